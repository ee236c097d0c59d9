//! A ROCA-structured RSA key (CVE-2017-15361), for tests of the refusal of such keys.

use openssl::error::ErrorStack;

/// A 2048-bit RSA key built the way Infineon's RSALib built them (ROCA, CVE-2017-15361): each
/// prime is `k*M + (65537^a mod M)` with `M` the product of the first 126 primes (the paper's
/// `M` for 1984- to 3936-bit keys), random `a` and `k`. A real, working key whose modulus
/// has the fingerprint `scep::roca::has_fingerprint` looks for; for tests of the refusal.
pub fn roca_structured_rsa_2048() -> Result<openssl::rsa::Rsa<openssl::pkey::Private>, ErrorStack> {
    use openssl::bn::{BigNum, BigNumContext, MsbOption};
    let mut ctx = BigNumContext::new()?;
    let mut m = BigNum::from_u32(1)?;
    let mut found = 0;
    let mut candidate = 2u32;
    while found < 126 {
        if (2..candidate)
            .take_while(|d| d * d <= candidate)
            .all(|d| !candidate.is_multiple_of(d))
        {
            m.mul_word(candidate)?;
            found += 1;
        }
        candidate += 1;
    }
    let e = BigNum::from_u32(65_537)?;
    let one = BigNum::from_u32(1)?;
    // p in [1.5 * 2^1023, 2^1024): the product of two such primes has exactly 2048 bits.
    let mut lo_bound = BigNum::new()?;
    let three = BigNum::from_u32(3)?;
    lo_bound.lshift(&three, 1022)?;
    let mut hi_bound = BigNum::new()?;
    hi_bound.lshift(&one, 1024)?;
    let mut lo = BigNum::new()?;
    lo.checked_div(&lo_bound, &m, &mut ctx)?;
    let mut hi = BigNum::new()?;
    hi.checked_div(&hi_bound, &m, &mut ctx)?;
    let mut span = BigNum::new()?;
    span.checked_sub(&hi, &lo)?;
    let prime = |ctx: &mut BigNumContext| -> Result<BigNum, ErrorStack> {
        let mut a = BigNum::new()?;
        a.rand(62, MsbOption::MAYBE_ZERO, false)?;
        let mut c = BigNum::new()?;
        c.mod_exp(&e, &a, &m, ctx)?;
        loop {
            let mut k = BigNum::new()?;
            span.rand_range(&mut k)?;
            let mut k_lo = BigNum::new()?;
            k_lo.checked_add(&k, &lo)?;
            let mut km = BigNum::new()?;
            km.checked_mul(&k_lo, &m, ctx)?;
            let mut p = BigNum::new()?;
            p.checked_add(&km, &c)?;
            let mut p1 = BigNum::new()?;
            p1.checked_sub(&p, &one)?;
            let mut g = BigNum::new()?;
            g.gcd(&p1, &e, ctx)?;
            if g == one && p.is_prime(64, ctx)? {
                return Ok(p);
            }
        }
    };
    let p = prime(&mut ctx)?;
    let q = loop {
        let q = prime(&mut ctx)?;
        if q != p {
            break q;
        }
    };
    let mut n = BigNum::new()?;
    n.checked_mul(&p, &q, &mut ctx)?;
    let mut p1 = BigNum::new()?;
    p1.checked_sub(&p, &one)?;
    let mut q1 = BigNum::new()?;
    q1.checked_sub(&q, &one)?;
    let mut phi = BigNum::new()?;
    phi.checked_mul(&p1, &q1, &mut ctx)?;
    let mut d = BigNum::new()?;
    d.mod_inverse(&e, &phi, &mut ctx)?;
    let mut dmp1 = BigNum::new()?;
    dmp1.nnmod(&d, &p1, &mut ctx)?;
    let mut dmq1 = BigNum::new()?;
    dmq1.nnmod(&d, &q1, &mut ctx)?;
    let mut iqmp = BigNum::new()?;
    iqmp.mod_inverse(&q, &p, &mut ctx)?;
    openssl::rsa::Rsa::from_private_components(n, e.to_owned()?, d, p, q, dmp1, dmq1, iqmp)
}
