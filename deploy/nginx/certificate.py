"""The certificate of install-host --tls-cert, as nginx will use it. Run by scripts/install-host
with the host's /usr/bin/python3 (the standard library only):

    certificate.py pair CERT KEY   fails, saying why, when nginx could not serve CERT with KEY
    certificate.py ocsp CERT       succeeds when CERT names an OCSP responder (nginx may staple)

health_check.py reads the certificate nginx must serve with first_certificate.
"""

import re
import ssl
import sys

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.S)
#: id-ad-ocsp (1.3.6.1.5.5.7.48.1) as DER: what names an OCSP responder in a certificate's AIA.
OCSP = b"\x06\x08\x2b\x06\x01\x05\x05\x07\x30\x01"


def first_certificate(path: str) -> bytes | None:
    """The DER of the first certificate in the PEM file path: the server's, before its chain."""
    with open(path) as file:
        pem = PEM.search(file.read())
    return ssl.PEM_cert_to_DER_cert(pem.group(0)) if pem else None


def why_not_a_pair(cert: str, key: str) -> str | None:
    """Why nginx could not serve the certificate (chain) cert with the private key key, or None."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as e:
        reason = e.reason or ""
        if "KEY_VALUES_MISMATCH" in reason:
            return "the key is not the certificate's (they do not match)"
        if "PEM" in reason or "NO_START_LINE" in reason:
            return "a PEM certificate (chain) and its PEM private key, please"
        return f"OpenSSL cannot use them ({reason or e})"
    except OSError as e:
        return str(e.strerror or e)
    return None


def main(args: list[str]) -> int:
    if len(args) == 3 and args[0] == "pair":
        why = why_not_a_pair(args[1], args[2])
        if why:
            print(why)
        return 1 if why else 0
    if len(args) == 2 and args[0] == "ocsp":
        der = first_certificate(args[1])
        return 0 if der and OCSP in der else 1
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
