//! The SCEP server (NDES role): HTTP <-> `scep` <-> policy <-> CA.
