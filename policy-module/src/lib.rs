//! The Intune/ConfigMgr role: profiles, devices, bound one-time challenges, VerifyRequest/Notify.
