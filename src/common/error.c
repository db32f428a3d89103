/* Names and messages for the codes in tessera/error.h. */
#include "tessera/error.h"

#include <stddef.h>

struct entry {
  int code;
  const char *name;
  const char *msg;
};

static const struct entry table[] = {
    {TSR_OK, "TSR_OK", "success"},
    {TSR_ENOMEM, "TSR_ENOMEM", "out of memory"},
    {TSR_EINVAL, "TSR_EINVAL", "invalid argument"},
    {TSR_EDECODE, "TSR_EDECODE", "malformed or truncated encoding"},
    {TSR_ECRYPTO, "TSR_ECRYPTO", "cryptographic primitive failed"},
    {TSR_EVERIFY, "TSR_EVERIFY", "signature or authentication tag did not verify"},
    {TSR_EEPOCH, "TSR_EEPOCH", "message is for a different epoch"},
    {TSR_EGROUP, "TSR_EGROUP", "message is for a different group"},
    {TSR_EREPLAY, "TSR_EREPLAY", "message replayed: key already used"},
    {TSR_EWINDOW, "TSR_EWINDOW", "message outside the out-of-order window"},
    {TSR_EUNSUPPORTED, "TSR_EUNSUPPORTED", "not supported"},
    {TSR_EPROTOCOL, "TSR_EPROTOCOL", "protocol rule violated"},
    {TSR_ENOTFOUND, "TSR_ENOTFOUND", "not found"},
    {TSR_EIO, "TSR_EIO", "input/output error"},
    {TSR_ESTATE, "TSR_ESTATE", "operation not valid in this state"},
    {TSR_EDECRYPT, "TSR_EDECRYPT", "decryption failed"},
    {TSR_ESENDER, "TSR_ESENDER", "sender not allowed"},
    {TSR_EEXPIRED, "TSR_EEXPIRED", "outside its validity period"},
    {TSR_ECAPABILITY, "TSR_ECAPABILITY", "required capability missing"},
    {TSR_ETREE, "TSR_ETREE", "invalid ratchet tree"},
    {TSR_ELIMIT, "TSR_ELIMIT", "size or count limit exceeded"},
    {TSR_ECONFLICT, "TSR_ECONFLICT", "already exists or conflicts"},
};

static const struct entry *find(int err) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].code == err) return &table[i];
  return NULL;
}

const char *tsr_strerror(int err) {
  const struct entry *e = find(err);
  return e ? e->msg : "unknown error";
}

const char *tsr_errname(int err) {
  const struct entry *e = find(err);
  return e ? e->name : "TSR_EUNKNOWN";
}
