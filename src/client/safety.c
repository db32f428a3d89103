/* Safety numbers (tessera.h, "Safety numbers"): two people compare one
 * 60-digit number to check that the identity keys their apps use for each
 * other are the real ones. Built from SHA-256 only (no new primitive): each
 * party's 30 digits come from the hash of a label, its account id and its
 * identity key; the two halves are put in a fixed order so both people see
 * the same number. */
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "proto/base64.h"
#include "proto/json.h"
#include "tessera/tessera.h"

#define LABEL "tessera safety number v1"

/* 30 decimal digits for one party. */
static void half(const uint8_t account[16], const uint8_t ik[32], char out[31]) {
  uint8_t in[sizeof LABEL + 16 + 32], h[SHA256_DIGEST_LENGTH];
  memcpy(in, LABEL, sizeof LABEL); /* with its NUL: the label is delimited */
  memcpy(in + sizeof LABEL, account, 16);
  memcpy(in + sizeof LABEL + 16, ik, 32);
  SHA256(in, sizeof in, h);
  for (int g = 0; g < 6; g++) {
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) v = v << 8 | h[5 * g + i];
    snprintf(out + 5 * g, 6, "%05u", (unsigned)(v % 100000));
  }
}

int tsr_safety_number(const uint8_t account_a[16], const uint8_t identity_key_a[32],
                      const uint8_t account_b[16], const uint8_t identity_key_b[32],
                      char out[TSR_SAFETY_NUMBER_SIZE]) {
  if (!account_a || !identity_key_a || !account_b || !identity_key_b || !out)
    return TSR_EINVAL;
  char a[31], b[31];
  half(account_a, identity_key_a, a);
  half(account_b, identity_key_b, b);
  const char *first = strcmp(a, b) <= 0 ? a : b, *second = first == a ? b : a;
  char digits[61];
  memcpy(digits, first, 30);
  memcpy(digits + 30, second, 30);
  size_t o = 0;
  for (int g = 0; g < 12; g++) {
    if (g) out[o++] = ' ';
    memcpy(out + o, digits + 5 * g, 5);
    o += 5;
  }
  out[o] = '\0';
  return 0;
}

static int decode_id(const char *b64, size_t n, uint8_t *out, size_t want) {
  size_t got = 0;
  if (b64_decode(out, want, b64, n, B64_MODE_URL_NOPAD, &got) != 0 || got != want)
    return TSR_EDECODE;
  return 0;
}

/* The identity key of account_id (base64url) as the server gives it. */
static int fetch_identity(tsr_client *c, const char *account_id, uint8_t ik[32]) {
  char path[96];
  if (strlen(account_id) != 22) return TSR_EINVAL;
  snprintf(path, sizeof path, "/v1/accounts/%s/keys", account_id);
  tsr_reply r = {0};
  int rc = tsr_call_sync(c, "GET", path, NULL, &r);
  if (rc == 0) rc = r.err;
  if (rc == 0) {
    json_token t[64];
    int i = json_parse(r.body, r.body_len, t, 64, NULL) > 0
                ? json_object_get(r.body, t, 0, "identity_key")
                : -1;
    const char *p;
    size_t n;
    rc = i >= 0 && json_get_string_view(r.body, t, i, &p, &n) == 0
             ? decode_id(p, n, ik, 32)
             : TSR_EDECODE;
  }
  tsr_reply_clear(&r);
  return rc;
}

int tsr_safety_number_sync(tsr_client *c, const char *account_id,
                           char out[TSR_SAFETY_NUMBER_SIZE]) {
  if (!c || !account_id || !out) return TSR_EINVAL;
  tsr_session_info me;
  int rc = tsr_client_session(c, &me);
  if (rc) return rc;
  if (!me.logged_in) return TSR_ESTATE;
  uint8_t acc_a[16], acc_b[16], ik_a[32], ik_b[32];
  if ((rc = decode_id(me.account_id, strlen(me.account_id), acc_a, 16)) != 0 ||
      (rc = decode_id(account_id, strlen(account_id), acc_b, 16)) != 0)
    return rc == TSR_EDECODE ? TSR_EINVAL : rc;
  rc = me.identity_key[0] ? decode_id(me.identity_key, strlen(me.identity_key), ik_a, 32)
                          : fetch_identity(c, me.account_id, ik_a);
  if (!rc) rc = fetch_identity(c, account_id, ik_b);
  if (!rc) rc = tsr_safety_number(acc_a, ik_a, acc_b, ik_b, out);
  return rc;
}
