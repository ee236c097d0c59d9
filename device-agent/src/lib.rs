//! The device: MDM check-in, local key, SCEP enrollment, renewal and wipe; fleet mode.
