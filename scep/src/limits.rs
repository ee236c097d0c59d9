//! Size bounds for everything `scep` decodes. A SCEP request is a few kilobytes; these leave
//! room for large keys and certificate chains while refusing memory-exhaustion attempts before
//! any work is done.

/// Largest pkiMessage (or GetCACert answer) accepted, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// Longest GET `message=` value accepted: base64 of [`MAX_MESSAGE_SIZE`] bytes, percent-encoded
/// at worst three characters per base64 character.
pub const MAX_GET_MESSAGE_LEN: usize = MAX_MESSAGE_SIZE / 3 * 4 * 3 + 64;

/// Longest senderNonce echoed back as recipientNonce; longer ones make the message undecodable.
/// (Nonces that are not exactly 16 bytes are refused, but still answered.)
pub const MAX_NONCE_ECHO: usize = 64;

/// Most arcs in an OBJECT IDENTIFIER. The longest OIDs a SCEP peer sends in practice are
/// Microsoft's certificate-template OIDs (1.3.6.1.4.1.311.21.8 and six to eight more arcs,
/// about 17); 32 leaves room and bounds every OID the parser reads, anywhere.
pub const MAX_OID_ARCS: usize = 32;

/// Largest arc of an OBJECT IDENTIFIER, in bits: 128 admits the UUID arcs of X.667
/// (`2.25.<128-bit UUID>`), which real PKIs use, and nothing longer. Huge arcs are what made
/// OpenSSL's OBJ_obj2txt quadratic (CVE-2023-2650): with both bounds an OID's content is at
/// most 31 subidentifiers of 19 octets.
pub const MAX_OID_ARC_BITS: u32 = 128;
