//! Universal tags used by SCEP structures (X.680 §8.4), and context-specific tag builders.
#![allow(missing_docs)] // The names are the X.680 names.
pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const ENUMERATED: u8 = 0x0a;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const T61_STRING: u8 = 0x14;
pub const IA5_STRING: u8 = 0x16;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const UNIVERSAL_STRING: u8 = 0x1c;
pub const BMP_STRING: u8 = 0x1e;
/// SEQUENCE, constructed.
pub const SEQUENCE: u8 = 0x30;
/// SET, constructed.
pub const SET: u8 = 0x31;

/// `[n]` context-specific, constructed (EXPLICIT, or IMPLICIT of a constructed type).
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// `[n]` context-specific, primitive (IMPLICIT of a primitive type).
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | n
}

/// The constructed form of a primitive tag (BER constructed strings).
pub const fn constructed(t: u8) -> u8 {
    t | 0x20
}
