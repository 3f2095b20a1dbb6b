//! What to do about a transport error (DNS, refused connection, refused certificate), appended
//! to [`ApiError::Network`](super::ApiError::Network)'s message.
//!
//! The cause is found by type where the type is public: the `source()` chain is walked, stepping
//! into the payload of every `std::io::Error` (whose own `source()` skips it), and the links are
//! downcast to `rustls::Error` (the same rustls reqwest uses), `std::io::Error` kinds and
//! hyper-util's `InvalidNameError`. hyper-util's and reqwest's DNS errors are private types: they
//! are recognised by their fixed `Display` ("dns error", "error resolving DNS") on their own link,
//! not by searching the whole message. Matching the message text is the last resort, for chains
//! that none of this recognises (a future reqwest or hyper-util that wraps differently).

use std::error::Error;
use std::io;

use rustls::CertificateError;

/// The certificate is signed by a CA this machine does not trust.
pub(crate) const UNKNOWN_ISSUER: &str = "the endpoint's certificate is signed by a CA this machine does not trust: if that is your \
     own CA (e.g. a TLS-inspecting proxy), set [api] ca_file to its PEM file";
/// The certificate is not for the endpoint's host name.
pub(crate) const WRONG_NAME: &str = "the endpoint's certificate is not valid for the host name in [api] endpoint: use the name \
     the certificate was issued for";
/// Expired or not yet valid.
pub(crate) const NOT_NOW: &str = "the endpoint's certificate is expired or not yet valid: check this machine's clock \
     (NTP) and the server's certificate";
/// Any other refusal of the certificate.
pub(crate) const BAD_CERTIFICATE: &str = "check [api] endpoint (the host name must match the certificate) and the server's \
     certificate; a certificate from a private CA needs [api] ca_file";
/// TLS spoken to something that does not answer in TLS.
pub(crate) const NOT_TLS: &str = "the endpoint did not answer in TLS: if it is a plain-HTTP endpoint, write http:// in \
     [api] endpoint (the upload is retried)";
/// The host name does not resolve.
pub(crate) const DNS: &str = "the host name of `endpoint` in [api] does not resolve: check the name and this machine's DNS (the upload is retried)";
/// Nothing listens at the address.
pub(crate) const REFUSED: &str = "the connection to `endpoint` in [api] was refused: check its address and port, and that \
     the service listens there (the upload is retried)";
/// Any other connection failure.
pub(crate) const CONNECT: &str = "cannot connect to `endpoint` in [api]: check the address and the network (the upload is retried)";

/// This process ran out of file descriptors (EMFILE) or the system did (ENFILE): nothing is
/// wrong with the file or the endpoint.
pub(crate) const OUT_OF_DESCRIPTORS: &str = "ingestd has too many open files: raise its descriptor limit (`LimitNOFILE=` in the unit, \
     `ulimit -n` in a shell) (retried until then)";

/// Whether `e` is EMFILE or ENFILE.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What to do about a watched file that cannot be opened: its permissions, unless the process
/// is out of descriptors.
pub(crate) fn open_hint(e: &io::Error) -> &'static str {
    if out_of_descriptors(e) {
        OUT_OF_DESCRIPTORS
    } else {
        "make it readable by the user ingestd runs as (retried until then)"
    }
}

/// The hint for a transport error: `err` is the error whose chain is examined, `message` its
/// text (for the fallback), `connect` whether the connection could not be made at all.
pub(crate) fn hint(
    err: &(dyn Error + 'static),
    message: &str,
    connect: bool,
) -> Option<&'static str> {
    if let Some(h) = causes(err).find_map(typed_hint) {
        return Some(h);
    }
    // Fallback: the message text.
    if message.contains("invalid peer certificate") {
        return Some(if message.contains("UnknownIssuer") {
            UNKNOWN_ISSUER
        } else {
            BAD_CERTIFICATE
        });
    }
    if !connect {
        return None;
    }
    Some(if message.to_ascii_lowercase().contains("dns") {
        DNS
    } else {
        CONNECT
    })
}

/// The hint one link of the chain gives by its type (or a private type's fixed text).
fn typed_hint(e: &(dyn Error + 'static)) -> Option<&'static str> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return tls_hint(tls);
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if out_of_descriptors(io) {
            return Some(OUT_OF_DESCRIPTORS);
        }
        return match io.kind() {
            io::ErrorKind::ConnectionRefused => Some(REFUSED),
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown => Some(CONNECT),
            _ => None,
        };
    }
    if e.is::<hyper_util::client::legacy::connect::dns::InvalidNameError>() {
        return Some(DNS);
    }
    // hyper-util's `ConnectError::dns` and reqwest's `DnsError` are private; their messages are
    // fixed strings, compared whole on their own link.
    let text = e.to_string();
    if text == "dns error" || text == "error resolving DNS" {
        return Some(DNS);
    }
    None
}

fn tls_hint(e: &rustls::Error) -> Option<&'static str> {
    match e {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            CertificateError::UnknownIssuer => UNKNOWN_ISSUER,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                WRONG_NAME
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => NOT_NOW,
            _ => BAD_CERTIFICATE,
        }),
        rustls::Error::InvalidMessage(_) => Some(NOT_TLS),
        _ => None,
    }
}

/// `err` and its causes, stepping into each `io::Error`'s payload (its `source()` skips it).
fn causes<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn Error + 'static)| {
        match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(payload) => Some(payload as &(dyn Error + 'static)),
            None => e.source(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link like hyper-util's private `ConnectError`: a fixed message and a cause.
    #[derive(Debug)]
    struct Link(&'static str, Box<dyn Error + Send + Sync>);

    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Link {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    /// The shape reqwest + hyper-rustls produce for a refused certificate:
    /// `Link(io::Error(Other, io::Error(InvalidData, rustls::Error)))`.
    fn refused_certificate(c: CertificateError) -> Link {
        let inner = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(c),
        );
        Link("client error (Connect)", Box::new(io::Error::other(inner)))
    }

    #[test]
    fn certificate_refusals_by_type_even_when_the_text_says_nothing() {
        let cases = [
            (CertificateError::UnknownIssuer, UNKNOWN_ISSUER),
            (CertificateError::NotValidForName, WRONG_NAME),
            (CertificateError::Expired, NOT_NOW),
            (CertificateError::NotValidYet, NOT_NOW),
            (CertificateError::Revoked, BAD_CERTIFICATE),
        ];
        for (c, want) in cases {
            let e = refused_certificate(c);
            // The message given is unrelated: only the types can tell.
            assert_eq!(hint(&e, "client error", true), Some(want), "{e:?}");
        }
    }

    #[test]
    fn plain_http_spoken_to_with_tls() {
        let e = Link(
            "client error (Connect)",
            Box::new(io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            )),
        );
        assert_eq!(hint(&e, "", true), Some(NOT_TLS));
    }

    #[test]
    fn io_kinds() {
        let refused = Link(
            "tcp connect error",
            Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(hint(&refused, "", true), Some(REFUSED));
        let unreachable = Link(
            "tcp connect error",
            Box::new(io::Error::from(io::ErrorKind::NetworkUnreachable)),
        );
        assert_eq!(hint(&unreachable, "", true), Some(CONNECT));
    }

    /// `ulimit -n 16` (session 5 probe): "tcp open error: Too many open files" was told to check
    /// the address and the network, and a file that could not be opened to fix its permissions.
    #[test]
    fn out_of_descriptors_says_so_not_network_or_permissions() {
        let emfile = Link(
            "tcp open error",
            Box::new(io::Error::from_raw_os_error(libc::EMFILE)),
        );
        assert_eq!(hint(&emfile, "", true), Some(OUT_OF_DESCRIPTORS));
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        assert_eq!(open_hint(&enfile), OUT_OF_DESCRIPTORS);
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert!(open_hint(&denied).starts_with("make it readable"));
    }

    #[test]
    fn dns_by_the_private_links_fixed_text_not_by_a_substring() {
        let lookup =
            io::Error::other("failed to lookup address information: Name or service not known");
        let e = Link("dns error", Box::new(lookup));
        assert_eq!(hint(&e, "x", true), Some(DNS));
        // A refused connection whose text happens to contain "dns" (e.g. a proxy's name) is
        // still a refused connection: the type wins over the text.
        let e = Link(
            "tcp connect error via dns-proxy",
            Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(hint(&e, &e.to_string(), true), Some(REFUSED));
    }

    #[test]
    fn text_is_the_fallback_for_unrecognised_chains() {
        let e = io::Error::other("opaque");
        assert_eq!(
            hint(&e, "invalid peer certificate: UnknownIssuer", true),
            Some(UNKNOWN_ISSUER)
        );
        assert_eq!(hint(&e, "some DNS failure", true), Some(DNS));
        assert_eq!(hint(&e, "opaque", true), Some(CONNECT));
        assert_eq!(
            hint(&e, "opaque", false),
            None,
            "not a connect error: no hint"
        );
    }
}
