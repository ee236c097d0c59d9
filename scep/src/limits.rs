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
