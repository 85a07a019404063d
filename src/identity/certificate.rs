//! The validity end (`notAfter`) of the app's certificate credential, read from its PEM file.
//!
//! Only the path to `tbsCertificate.validity` is walked (RFC 5280 §4.1): the certificate is the
//! operator's own file, and Microsoft refuses assertions made with an expired certificate
//! (AADSTS700027), so its end date is worth reporting before that happens.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Why the certificate's end date could not be read; never carries file contents.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file is not PEM, or its first block is not a certificate.
    #[error("not a PEM certificate")]
    NotPem,
    /// The DER inside does not have the X.509 layout.
    #[error("the certificate's DER is malformed")]
    Malformed,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const EXPLICIT_VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The `notAfter` of the first certificate in `pem_bytes` (the leaf, when a chain follows).
pub fn not_after(pem_bytes: &[u8]) -> Result<OffsetDateTime, CertificateError> {
    let block = pem::parse(pem_bytes).map_err(|_| CertificateError::NotPem)?;
    if block.tag() != "CERTIFICATE" {
        return Err(CertificateError::NotPem);
    }
    not_after_der(block.contents())
}

/// The `notAfter` of a DER certificate.
pub fn not_after_der(der: &[u8]) -> Result<OffsetDateTime, CertificateError> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (tbs, _) = element(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&EXPLICIT_VERSION) {
        rest = element(rest, EXPLICIT_VERSION)?.1;
    }
    rest = element(rest, INTEGER)?.1; // serialNumber
    rest = element(rest, SEQUENCE)?.1; // signature algorithm
    rest = element(rest, SEQUENCE)?.1; // issuer
    let (validity, _) = element(rest, SEQUENCE)?;
    let (_, after_not_before) = any_time(validity)?;
    let (not_after, _) = any_time(after_not_before)?;
    Ok(not_after)
}

/// Splits one DER element with `tag` off `input`: (its contents, what follows).
fn element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), CertificateError> {
    let (&first, rest) = input.split_first().ok_or(CertificateError::Malformed)?;
    if first != tag {
        return Err(CertificateError::Malformed);
    }
    let (&length_byte, rest) = rest.split_first().ok_or(CertificateError::Malformed)?;
    let (length, rest) = if length_byte < 0x80 {
        (usize::from(length_byte), rest)
    } else {
        let count = usize::from(length_byte & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(CertificateError::Malformed);
        }
        let (digits, rest) = rest.split_at(count);
        let length = digits
            .iter()
            .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
        (length, rest)
    };
    if rest.len() < length {
        return Err(CertificateError::Malformed);
    }
    Ok(rest.split_at(length))
}

/// A `Time` (UTCTime or GeneralizedTime, both in UTC as RFC 5280 requires) and what follows.
fn any_time(input: &[u8]) -> Result<(OffsetDateTime, &[u8]), CertificateError> {
    let tag = *input.first().ok_or(CertificateError::Malformed)?;
    let (text, rest) = element(input, tag)?;
    let text = std::str::from_utf8(text).map_err(|_| CertificateError::Malformed)?;
    let digits = text.strip_suffix('Z').ok_or(CertificateError::Malformed)?;
    let full = match (tag, digits.len()) {
        // RFC 5280 §4.1.2.5.1: YY below 50 is 20YY, otherwise 19YY.
        (UTC_TIME, 12) => {
            let year: u32 = number(&digits[..2])?;
            let century = if year < 50 { "20" } else { "19" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return Err(CertificateError::Malformed),
    };
    let field = |range: std::ops::Range<usize>| number::<u32>(&full[range]);
    let month = u8::try_from(field(4..6)?)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(CertificateError::Malformed)?;
    let narrow = |value: u32| u8::try_from(value).map_err(|_| CertificateError::Malformed);
    let year = i32::try_from(field(0..4)?).map_err(|_| CertificateError::Malformed)?;
    let date = Date::from_calendar_date(year, month, narrow(field(6..8)?)?)
        .map_err(|_| CertificateError::Malformed)?;
    let time = Time::from_hms(
        narrow(field(8..10)?)?,
        narrow(field(10..12)?)?,
        narrow(field(12..14)?)?,
    )
    .map_err(|_| CertificateError::Malformed)?;
    Ok((PrimitiveDateTime::new(date, time).assume_utc(), rest))
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, CertificateError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CertificateError::Malformed);
    }
    text.parse().map_err(|_| CertificateError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A self-signed test certificate (`openssl req -x509 -days 30`, RSA-2048), valid from
    /// 2026-12-02 18:58:13 to 2027-01-01 18:58:13 UTC; its key was discarded.
    const TEST_CERTIFICATE: &str = include_str!("testdata/expiring.crt");

    /// The same with a GeneralizedTime end (dates after 2049 must be one): 2050-12-31 18:58:14 UTC.
    const TEST_CERTIFICATE_2051: &str = include_str!("testdata/until-2051.crt");

    #[test]
    fn the_end_date_of_a_utc_time_certificate_is_read() {
        assert_eq!(
            not_after(TEST_CERTIFICATE.as_bytes()).expect("parses"),
            datetime!(2027-01-01 18:58:13 UTC)
        );
    }

    #[test]
    fn the_end_date_of_a_generalized_time_certificate_is_read() {
        assert_eq!(
            not_after(TEST_CERTIFICATE_2051.as_bytes()).expect("parses"),
            datetime!(2050-12-31 18:58:14 UTC)
        );
    }

    #[test]
    fn a_key_or_garbage_is_not_a_certificate() {
        assert!(matches!(
            not_after(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertificateError::NotPem)
        ));
        assert!(matches!(
            not_after(b"not pem at all"),
            Err(CertificateError::NotPem)
        ));
        assert!(matches!(
            not_after_der(&[0x30, 0x05, 0x30]),
            Err(CertificateError::Malformed)
        ));
    }

    #[test]
    fn a_truncated_certificate_is_malformed_not_a_panic() {
        let block = pem::parse(TEST_CERTIFICATE.as_bytes()).expect("pem");
        let der = block.contents();
        for cut in 0..der.len().min(400) {
            assert!(not_after_der(&der[..cut]).is_err(), "cut at {cut}");
        }
    }
}
