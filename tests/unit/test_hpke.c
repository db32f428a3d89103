/* HPKE: the RFC 9180 appendix A vectors for DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256 with AES-128-GCM and ChaCha20Poly1305, all four modes, plus
 * misuse checks on contexts and inputs.
 *
 * Vector file format: "### <Mode> Setup Information" opens a test; then
 * "key: value" lines where a hex value may start on the key line or the
 * next one and may wrap over several lines; "#### Encryptions" and
 * "#### Exported Values" hold records opened by "sequence number:" and
 * "exporter_context:" respectively. */
#include <ctype.h>
#include <stdlib.h>

#include "mls/hpke.h"
#include "test.h"
#include "vectors.h"

#define MAX_FIELDS 32

typedef struct {
  char name[32];
  char *value; /* concatenated text, heap */
  size_t len;
} field;

typedef enum { REC_NONE, REC_SETUP, REC_ENC, REC_EXP } rec_kind;

typedef struct {
  rec_kind kind;
  field f[MAX_FIELDS];
  int n;
} record;

typedef struct {
  const char *file;
  const mls_suite *suite;
  bool ready; /* contexts are set up for the current test */
  int mode;
  hpke_ctx ctx_s, ctx_r;
  int setups, encryptions, exports, modes_seen;
} run_state;

static void record_clear(record *r) {
  for (int i = 0; i < r->n; i++) free(r->f[i].value);
  r->n = 0;
  r->kind = REC_NONE;
}

static const char *get(const record *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->f[i].name, name) == 0) return r->f[i].value;
  return NULL;
}

/* Hex field decoded into out; missing or bad hex fails the case. */
static bytes_t hexf(const record *r, const char *name, buf_t *out) {
  const char *v = get(r, name);
  if (v && !*v) { /* hex_decode("") offsets a NULL pointer in buf_extend */
    buf_reset(out);
    return buf_view(out);
  }
  int rc = v ? hex_decode(v, out) : TSR_ENOTFOUND;
  if (rc) {
    fprintf(stderr, "  FAIL field %s: %s\n", name, tsr_errname(rc));
    CHECK(rc == 0);
    buf_reset(out);
  }
  return buf_view(out);
}

static long numf(const record *r, const char *name) {
  const char *v = get(r, name);
  char *end = NULL;
  long n = v ? strtol(v, &end, 10) : -1;
  if (!v || end == v || *end) {
    fprintf(stderr, "  FAIL field %s: not a number\n", name);
    CHECK(0);
    return -1;
  }
  return n;
}

static void append_value(field *f, const char *text, size_t n) {
  char *p = realloc(f->value, f->len + n + 1);
  if (!p) abort();
  memcpy(p + f->len, text, n);
  f->len += n;
  p[f->len] = '\0';
  f->value = p;
}

/* --- Checks ----------------------------------------------------------- */

static void do_setup(run_state *st, const record *r) {
  st->ready = false;
  hpke_ctx_wipe(&st->ctx_s);
  hpke_ctx_wipe(&st->ctx_r);
  long mode = numf(r, "mode");
  st->suite = hpke_suite_find((uint16_t)numf(r, "kem_id"), (uint16_t)numf(r, "kdf_id"),
                              (uint16_t)numf(r, "aead_id"));
  CHECK(st->suite != NULL);
  CHECK(mode >= 0 && mode <= 3);
  if (!st->suite || mode < 0 || mode > 3) return;
  st->mode = (int)mode;
  const mls_suite *s = st->suite;
  bool auth = mode == HPKE_MODE_AUTH || mode == HPKE_MODE_AUTH_PSK;
  bool psk = mode == HPKE_MODE_PSK || mode == HPKE_MODE_AUTH_PSK;

  enum {
    INFO,
    IKME,
    PKE,
    SKE,
    IKMR,
    PKR,
    SKR,
    IKMS,
    PKS,
    SKS,
    PSK,
    PSKID,
    ENC,
    SS,
    KEY,
    NONCE,
    EXP,
    NBUF
  };
  buf_t b[NBUF];
  for (int i = 0; i < NBUF; i++) buf_init(&b[i]);
  hexf(r, "info", &b[INFO]);
  hexf(r, "ikmE", &b[IKME]);
  hexf(r, "pkEm", &b[PKE]);
  hexf(r, "skEm", &b[SKE]);
  hexf(r, "ikmR", &b[IKMR]);
  hexf(r, "pkRm", &b[PKR]);
  hexf(r, "skRm", &b[SKR]);
  if (auth) {
    hexf(r, "ikmS", &b[IKMS]);
    hexf(r, "pkSm", &b[PKS]);
    hexf(r, "skSm", &b[SKS]);
  }
  if (psk) {
    hexf(r, "psk", &b[PSK]);
    hexf(r, "psk_id", &b[PSKID]);
  }
  hexf(r, "enc", &b[ENC]);
  hexf(r, "shared_secret", &b[SS]);
  hexf(r, "key", &b[KEY]);
  hexf(r, "base_nonce", &b[NONCE]);
  hexf(r, "exporter_secret", &b[EXP]);
  if (test_failing()) goto out;

  /* DeriveKeyPair for every key in the test. */
  uint8_t sk[HPKE_NSK], pk[HPKE_NPK];
  const int kp[][3] = {{IKME, SKE, PKE}, {IKMR, SKR, PKR}, {IKMS, SKS, PKS}};
  for (int i = 0; i < (auth ? 3 : 2); i++) {
    CHECK_OK(hpke_derive_keypair(s, buf_view(&b[kp[i][0]]), sk, pk));
    CHECK_BYTES(BYTES(sk, sizeof sk), buf_view(&b[kp[i][1]]));
    CHECK_BYTES(BYTES(pk, sizeof pk), buf_view(&b[kp[i][2]]));
  }

  /* KEM on its own: shared_secret and enc. */
  uint8_t ss[HPKE_NSECRET], enc[HPKE_NENC];
  CHECK_OK(
      hpke_encap(s, buf_view(&b[PKR]), buf_view(&b[SKS]), buf_view(&b[IKME]), ss, enc));
  CHECK_BYTES(BYTES(ss, sizeof ss), buf_view(&b[SS]));
  CHECK_BYTES(BYTES(enc, sizeof enc), buf_view(&b[ENC]));
  memset(ss, 0, sizeof ss);
  CHECK_OK(hpke_decap(s, buf_view(&b[ENC]), buf_view(&b[SKR]), buf_view(&b[PKS]), ss));
  CHECK_BYTES(BYTES(ss, sizeof ss), buf_view(&b[SS]));

  /* Full setup on both sides: the key schedule outputs. */
  hpke_params ps = {.mode = (hpke_mode)mode,
                    .info = buf_view(&b[INFO]),
                    .psk = buf_view(&b[PSK]),
                    .psk_id = buf_view(&b[PSKID]),
                    .auth_sk = buf_view(&b[SKS])};
  hpke_params pr = ps;
  pr.auth_sk = BYTES_NONE;
  pr.auth_pk = buf_view(&b[PKS]);
  CHECK_OK(hpke_setup_sender_derand(&st->ctx_s, s, &ps, buf_view(&b[PKR]),
                                    buf_view(&b[IKME]), enc));
  CHECK_BYTES(BYTES(enc, sizeof enc), buf_view(&b[ENC]));
  CHECK_OK(hpke_setup_receiver(&st->ctx_r, s, &pr, buf_view(&b[ENC]), buf_view(&b[SKR])));
  const hpke_ctx *ctxs[] = {&st->ctx_s, &st->ctx_r};
  for (int i = 0; i < 2; i++) {
    CHECK_BYTES(BYTES(ctxs[i]->key, s->key_len), buf_view(&b[KEY]));
    CHECK_BYTES(BYTES(ctxs[i]->base_nonce, s->nonce_len), buf_view(&b[NONCE]));
    CHECK_BYTES(BYTES(ctxs[i]->exporter_secret, s->hash_len), buf_view(&b[EXP]));
    CHECK_INT(ctxs[i]->seq, 0);
  }
  if (!test_failing()) {
    st->ready = true;
    st->setups++;
    st->modes_seen |= 1 << mode;
  }
out:
  for (int i = 0; i < NBUF; i++) buf_free(&b[i]);
}

static void do_encryption(run_state *st, const record *r) {
  CHECK(st->ready);
  if (!st->ready) return;
  long seq = numf(r, "sequence number");
  buf_t pt, aad, nonce, ct, got;
  buf_t *all[] = {&pt, &aad, &nonce, &ct, &got};
  for (size_t i = 0; i < 5; i++) buf_init(all[i]);
  hexf(r, "pt", &pt);
  hexf(r, "aad", &aad);
  hexf(r, "nonce", &nonce);
  hexf(r, "ct", &ct);
  if (seq < 0 || test_failing()) goto out;
  /* The listed nonce is base_nonce XOR seq. */
  uint8_t n[MLS_MAX_NONCE];
  size_t nn = st->suite->nonce_len;
  memcpy(n, st->ctx_r.base_nonce, nn);
  for (int i = 0; i < 8; i++)
    n[nn - 1 - (size_t)i] ^= (uint8_t)((uint64_t)seq >> (8 * i));
  CHECK_BYTES(BYTES(n, nn), buf_view(&nonce));

  /* The vectors skip some numbers; contexts resynchronise via seq. */
  st->ctx_s.seq = (uint64_t)seq;
  st->ctx_r.seq = (uint64_t)seq;
  uint8_t *c = buf_extend(&got, pt.len + MLS_AEAD_TAG);
  CHECK_OK(hpke_seal(&st->ctx_s, buf_view(&aad), buf_view(&pt), c));
  CHECK_BYTES(buf_view(&got), buf_view(&ct));
  CHECK_INT(st->ctx_s.seq, seq + 1);
  buf_reset(&got);
  uint8_t *p = pt.len ? buf_extend(&got, pt.len) : NULL;
  CHECK_OK(hpke_open(&st->ctx_r, buf_view(&aad), buf_view(&ct), p));
  CHECK_BYTES(buf_view(&got), buf_view(&pt));
  CHECK_INT(st->ctx_r.seq, seq + 1);
  if (!test_failing()) st->encryptions++;
out:
  for (size_t i = 0; i < 5; i++) buf_free(all[i]);
}

static void do_export(run_state *st, const record *r) {
  CHECK(st->ready);
  if (!st->ready) return;
  long len = numf(r, "L");
  buf_t ctx, want;
  buf_init(&ctx);
  buf_init(&want);
  hexf(r, "exporter_context", &ctx);
  hexf(r, "exported_value", &want);
  CHECK(len >= 0 && len <= 1024);
  if (!test_failing()) {
    uint8_t out[1024];
    CHECK_OK(hpke_export(&st->ctx_s, buf_view(&ctx), out, (size_t)len));
    CHECK_BYTES(BYTES(out, (size_t)len), buf_view(&want));
    memset(out, 0, sizeof out);
    CHECK_OK(hpke_export(&st->ctx_r, buf_view(&ctx), out, (size_t)len));
    CHECK_BYTES(BYTES(out, (size_t)len), buf_view(&want));
    if (!test_failing()) st->exports++;
  }
  buf_free(&ctx);
  buf_free(&want);
}

/* Each record is judged on its own checks: the harness flag is sticky for
 * the whole case, so it is set aside and restored around the record. */
static void flush(run_state *st, record *r) {
  int saved = test_case_failed_;
  test_case_failed_ = 0;
  switch (r->kind) {
  case REC_SETUP: do_setup(st, r); break;
  case REC_ENC: do_encryption(st, r); break;
  case REC_EXP: do_export(st, r); break;
  case REC_NONE: break;
  }
  if (test_case_failed_)
    fprintf(stderr, "  (in %s, mode %d, record kind %d)\n", st->file, st->mode,
            (int)r->kind);
  test_case_failed_ |= saved;
  record_clear(r);
}

/* --- Parser ----------------------------------------------------------- */

static bool is_hex_line(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)s[i])) return false;
  return true;
}

static void run_file(const char *rel) {
  const char *path = vec_path(rel);
  if (!path) TEST_SKIP("%s not found (set TSR_VECTORS)", rel);
  char *text = vec_read_file(path, NULL);
  CHECK(text != NULL);
  if (!text) return;

  run_state st = {.file = rel};
  record rec = {0};
  rec_kind section = REC_NONE;
  field *cur = NULL; /* field a wrapped hex line continues */
  char *line = text;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0'; /* so strstr stays within the line */
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) n--;

    if (n >= 3 && strncmp(line, "###", 3) == 0) {
      flush(&st, &rec);
      cur = NULL;
      if (strstr(line, "Setup Information"))
        section = REC_SETUP;
      else if (strstr(line, "Encryptions"))
        section = REC_ENC;
      else if (strstr(line, "Exported Values"))
        section = REC_EXP;
      else
        section = REC_NONE;
    } else if (section != REC_NONE && memchr(line, ':', n)) {
      const char *colon = memchr(line, ':', n);
      size_t klen = (size_t)(colon - line);
      const char *v = colon + 1;
      while (v < line + n && *v == ' ') v++;
      static const char *opener[] = {[REC_SETUP] = "mode",
                                     [REC_ENC] = "sequence number",
                                     [REC_EXP] = "exporter_context"};
      if (klen == strlen(opener[section]) && strncmp(line, opener[section], klen) == 0) {
        flush(&st, &rec);
        rec.kind = section;
      }
      CHECK(rec.n < MAX_FIELDS && klen < sizeof rec.f[0].name && rec.kind != REC_NONE);
      if (rec.n < MAX_FIELDS && klen < sizeof rec.f[0].name && rec.kind != REC_NONE) {
        cur = &rec.f[rec.n++];
        memcpy(cur->name, line, klen);
        cur->name[klen] = '\0';
        cur->value = NULL;
        cur->len = 0;
        append_value(cur, v, (size_t)(line + n - v));
      }
    } else if (cur && is_hex_line(line, n)) {
      append_value(cur, line, n);
    } else {
      cur = NULL; /* "~~~" or blank: no value continues past it */
    }
    line = nl ? nl + 1 : NULL;
  }
  flush(&st, &rec);
  free(text);
  hpke_ctx_wipe(&st.ctx_s);
  hpke_ctx_wipe(&st.ctx_r);

  printf("vectors %s: %d entries checked (%d setups, %d encryptions, %d exports)\n", rel,
         st.setups + st.encryptions + st.exports, st.setups, st.encryptions, st.exports);
  CHECK_INT(st.modes_seen, 0xf); /* base, psk, auth, auth_psk */
  CHECK(st.encryptions > 0 && st.exports > 0);
}

static void test_vectors_aes128gcm(void) {
  run_file("hpke/rfc9180-x25519-sha256-aes128gcm.txt");
}

static void test_vectors_chacha20poly1305(void) {
  run_file("hpke/rfc9180-x25519-sha256-chacha20poly1305.txt");
}

/* --- Misuse ----------------------------------------------------------- */

static void test_roundtrip_and_misuse(void) {
  const mls_suite *s =
      hpke_suite_find(HPKE_KEM_X25519_SHA256, HPKE_KDF_HKDF_SHA256, HPKE_AEAD_AES128GCM);
  CHECK(s != NULL);
  CHECK(hpke_suite_find(HPKE_KEM_X25519_SHA256, HPKE_KDF_HKDF_SHA256, 0x0002) == NULL);
  CHECK(hpke_suite_find(0x0010, HPKE_KDF_HKDF_SHA256, HPKE_AEAD_AES128GCM) == NULL);
  if (!s) return;
  uint8_t skR[32], pkR[32], skS[32], pkS[32], enc[32];
  CHECK_OK(hpke_generate_keypair(s, skR, pkR));
  CHECK_OK(hpke_generate_keypair(s, skS, pkS));
  bytes_t R = BYTES(pkR, 32), SR = BYTES(skR, 32);
  bytes_t psk = BYTES("0123456789abcdef0123456789abcdef", 32), id = BYTES("id", 2);
  hpke_ctx cs, cr;

  /* VerifyPSKInputs and auth key presence. */
  hpke_params bad[] = {
      {.mode = HPKE_MODE_BASE, .psk = psk, .psk_id = id},
      {.mode = HPKE_MODE_PSK},
      {.mode = HPKE_MODE_PSK, .psk = psk},
      {.mode = HPKE_MODE_PSK, .psk_id = id},
      {.mode = HPKE_MODE_AUTH},
      {.mode = HPKE_MODE_BASE, .auth_sk = BYTES(skS, 32)},
      {.mode = (hpke_mode)4},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_ERR(hpke_setup_sender(&cs, s, &bad[i], R, enc), TSR_EINVAL);
  hpke_params p = {.mode = HPKE_MODE_BASE};
  CHECK_ERR(hpke_setup_sender(&cs, s, &p, BYTES(pkR, 31), enc), TSR_EINVAL);
  CHECK_ERR(hpke_setup_sender_derand(&cs, s, &p, R, BYTES_NONE, enc), TSR_EINVAL);

  /* Random auth_psk round trip. */
  hpke_params ps = {.mode = HPKE_MODE_AUTH_PSK,
                    .info = BYTES("info", 4),
                    .psk = psk,
                    .psk_id = id,
                    .auth_sk = BYTES(skS, 32)};
  hpke_params pr = ps;
  pr.auth_sk = BYTES_NONE;
  pr.auth_pk = BYTES(pkS, 32);
  CHECK_OK(hpke_setup_sender(&cs, s, &ps, R, enc));
  CHECK_OK(hpke_setup_receiver(&cr, s, &pr, BYTES(enc, 32), SR));
  uint8_t ct[5 + MLS_AEAD_TAG], pt[5];
  for (int i = 0; i < 3; i++) {
    CHECK_OK(hpke_seal(&cs, BYTES("a", 1), BYTES("hello", 5), ct));
    CHECK_OK(hpke_open(&cr, BYTES("a", 1), BYTES(ct, sizeof ct), pt));
    CHECK_BYTES(BYTES(pt, 5), BYTES("hello", 5));
  }
  /* Roles are enforced. */
  CHECK_ERR(hpke_open(&cs, BYTES("a", 1), BYTES(ct, sizeof ct), pt), TSR_ESTATE);
  CHECK_ERR(hpke_seal(&cr, BYTES("a", 1), BYTES("hello", 5), ct), TSR_ESTATE);
  /* A failed Open does not consume a sequence number. */
  CHECK_OK(hpke_seal(&cs, BYTES_NONE, BYTES("hello", 5), ct));
  ct[0] ^= 1;
  CHECK_ERR(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt), TSR_EDECRYPT);
  CHECK_INT(cr.seq, 3);
  ct[0] ^= 1;
  CHECK_OK(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt));
  CHECK_INT(cr.seq, 4);
  /* Out of order fails. */
  CHECK_OK(hpke_seal(&cs, BYTES_NONE, BYTES("hello", 5), ct));
  CHECK_OK(hpke_seal(&cs, BYTES_NONE, BYTES("hello", 5), ct));
  CHECK_ERR(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt), TSR_EDECRYPT);
  /* Exports agree; too long is refused. */
  uint8_t e1[40], e2[40];
  CHECK_OK(hpke_export(&cs, BYTES("x", 1), e1, sizeof e1));
  CHECK_OK(hpke_export(&cr, BYTES("x", 1), e2, sizeof e2));
  CHECK_BYTES(BYTES(e1, 40), BYTES(e2, 40));
  static uint8_t big[255 * 32 + 1];
  CHECK_ERR(hpke_export(&cs, BYTES_NONE, big, sizeof big), TSR_EINVAL);
  /* Sequence exhaustion. */
  cs.seq = UINT64_MAX;
  CHECK_ERR(hpke_seal(&cs, BYTES_NONE, BYTES("hello", 5), ct), TSR_ELIMIT);
  /* The receiver expecting another sender key, or another psk, derives
   * other keys: decryption fails. */
  CHECK_OK(hpke_setup_sender(&cs, s, &ps, R, enc));
  CHECK_OK(hpke_seal(&cs, BYTES_NONE, BYTES("hello", 5), ct));
  pr.auth_pk = R;
  CHECK_OK(hpke_setup_receiver(&cr, s, &pr, BYTES(enc, 32), SR));
  CHECK_ERR(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt), TSR_EDECRYPT);
  pr.auth_pk = BYTES(pkS, 32);
  pr.psk = BYTES("0123456789abcdef0123456789abcdeX", 32);
  CHECK_OK(hpke_setup_receiver(&cr, s, &pr, BYTES(enc, 32), SR));
  CHECK_ERR(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt), TSR_EDECRYPT);
  pr.psk = psk;
  CHECK_OK(hpke_setup_receiver(&cr, s, &pr, BYTES(enc, 32), SR));
  CHECK_OK(hpke_open(&cr, BYTES_NONE, BYTES(ct, sizeof ct), pt));
  /* Low-order enc is refused by Decap. */
  static const uint8_t zero[32];
  CHECK_ERR(hpke_setup_receiver(&cr, s, &pr, BYTES(zero, 32), SR), TSR_ECRYPTO);
  CHECK(cr.suite == NULL); /* failed setup leaves the context wiped */
  hpke_ctx_wipe(&cs);
  hpke_ctx_wipe(&cr);
}

int main(void) {
  if (crypto_init() != 0) {
    fprintf(stderr, "crypto_init failed\n");
    return 1;
  }
  RUN(test_vectors_aes128gcm);
  RUN(test_vectors_chacha20poly1305);
  RUN(test_roundtrip_and_misuse);
  return test_report("hpke");
}
