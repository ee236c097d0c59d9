//! Who may have what issued (docs/decisions.md #10): a caller's token says who is calling; the
//! policy module's signed grant says what may be issued. Plain mode, which has no policy
//! module, has its own narrow entitlement instead.

use ca_api::{GrantStatement, GrantVerifier, IssueCall};

use crate::error::CaError;

/// The right under which an issuance is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueRight {
    /// Exactly what a grant signed by a trusted policy module states: every API caller unless
    /// configured otherwise.
    Granted,
    /// Plain mode's entitlement (a static challenge, no policy module): no grant, no SANs, the
    /// caller's templates only; the template's rules still cap the subject and validity.
    PlainMode,
    /// The CA's own operator at its console (`ca-mock issue`, the RA identity a lab issues
    /// for itself): never reachable through the API.
    Operator,
}

/// The statement this call is issued under, if any: checked before anything is parsed or
/// stored. The key binding is checked by the CA once it has read the CSR.
pub(crate) fn authorise(
    right: IssueRight,
    grants: &GrantVerifier,
    call: &IssueCall,
    now: i64,
) -> Result<Option<GrantStatement>, CaError> {
    match right {
        IssueRight::Operator => Ok(None),
        IssueRight::PlainMode => {
            if call.sans.is_empty() {
                Ok(None)
            } else {
                Err(CaError::Forbidden)
            }
        }
        IssueRight::Granted => {
            let signed = call.grant.as_ref().ok_or(ca_api::GrantError::Missing)?;
            let statement = grants.verify(signed, now)?;
            call.check_against(&statement)?;
            Ok(Some(statement))
        }
    }
}
