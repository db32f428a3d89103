/* tessera: error codes shared by every public API.
 *
 * Every library function returns 0 (TSR_OK) or one of the negative codes
 * below. A function that fails changes nothing the caller can observe. The
 * numeric values and the names returned by tsr_errname() are stable: they
 * may appear in logs, protocol replies and scripts. */
#ifndef TESSERA_ERROR_H
#define TESSERA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum tsr_error {
  TSR_OK = 0,
  TSR_ENOMEM = -1,        /* allocation failed */
  TSR_EINVAL = -2,        /* bad argument from the caller */
  TSR_EDECODE = -3,       /* malformed, truncated or non-canonical encoding */
  TSR_ECRYPTO = -4,       /* a primitive failed (bad key, RNG failure) */
  TSR_EVERIFY = -5,       /* signature, MAC or tag did not verify (forged) */
  TSR_EEPOCH = -6,        /* message for another epoch */
  TSR_EGROUP = -7,        /* message for another group */
  TSR_EREPLAY = -8,       /* key already consumed: replayed message */
  TSR_EWINDOW = -9,       /* generation outside the out-of-order window */
  TSR_EUNSUPPORTED = -10, /* cipher suite, version or feature not supported */
  TSR_EPROTOCOL = -11,    /* well-formed but violates an RFC 9420 rule */
  TSR_ENOTFOUND = -12,    /* no such member, key, file or entry */
  TSR_EIO = -13,          /* operating-system I/O error */
  TSR_ESTATE = -14,       /* operation not valid in the current state */
  TSR_EDECRYPT = -15,     /* AEAD or HPKE decryption failed */
  TSR_ESENDER = -16,      /* sender not allowed to send this content */
  TSR_EEXPIRED = -17,     /* key package or credential outside its lifetime */
  TSR_ECAPABILITY = -18,  /* a member lacks a required capability */
  TSR_ETREE = -19,        /* ratchet tree invalid (hashes, keys, structure) */
  TSR_ELIMIT = -20,       /* a configured size or count limit was exceeded */
  TSR_ECONFLICT = -21,    /* already exists, or conflicts with stored state */
};

/* Human-readable description of an error code. Never NULL; static storage. */
const char *tsr_strerror(int err);

/* Stable symbolic name of an error code, e.g. "TSR_EDECODE". Never NULL. */
const char *tsr_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
