/* Attachments (tessera.h "Attachments"; docs/protocol.md "Attachments
 * (blobs)"): a file is encrypted here with a fresh key, uploaded as an
 * opaque blob, and described by a tsr_attachment that travels inside an
 * MLS message. Encryption: libsodium crypto_secretstream_xchacha20poly1305
 * over chunks of TSR_ATTACHMENT_CHUNK plaintext bytes, the last one tagged
 * FINAL (so a truncated blob never decrypts); the stream header is kept in
 * the descriptor, the blob holds only the encrypted chunks. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/base64.h"
#include "proto/json.h"

#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define CCHUNK (TSR_ATTACHMENT_CHUNK + ABYTES)
#define PIECE (1u << 20) /* ciphertext bytes per Range request */

_Static_assert(sizeof(((tsr_attachment *)0)->key) ==
                   crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "key size");
_Static_assert(sizeof(((tsr_attachment *)0)->header) ==
                   crypto_secretstream_xchacha20poly1305_HEADERBYTES,
               "header size");

/* Ciphertext size of a plaintext of n bytes: one chunk at least. */
static uint64_t cipher_size_of(uint64_t n) {
  uint64_t chunks = n == 0 ? 1 : (n + TSR_ATTACHMENT_CHUNK - 1) / TSR_ATTACHMENT_CHUNK;
  return n + chunks * ABYTES;
}

static void local_reply(tsr_reply *r, int err, const char *code, const char *msg) {
  if (!r) return;
  tsr_reply_clear(r);
  tsr_result res = {err, 0, code, msg, "", 0};
  client_reply_cb(r, &res);
}

/* Runs one blob request and waits: the reply is filled; returns its err. */
static int blob_call(tsr_client *c, creq *r, tsr_reply *out) {
  r->auth = true;
  r->kind = REQ_PLAIN;
  r->cb = client_reply_cb;
  memset(out, 0, sizeof *out);
  r->cb_arg = out;
  int rc = client_submit(c, r);
  return client_sync_wait(c, rc, out, false);
}

static bool logged_in(tsr_client *c) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(client_state(c), K_TOKEN, &b);
  buf_free_secret(&b);
  return rc == 0;
}

int tsr_attachment_upload_sync(tsr_client *c, const char *path, tsr_attachment *out,
                               tsr_reply *reply) {
  if (!c || !path || !out) return TSR_EINVAL;
  if (!logged_in(c)) return TSR_ESTATE;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    return TSR_EIO;
  }
  if ((uint64_t)st.st_size > TSR_ATTACHMENT_MAX) {
    close(fd);
    return TSR_ELIMIT;
  }
  tsr_attachment a;
  memset(&a, 0, sizeof a);
  a.size = (uint64_t)st.st_size;
  a.cipher_size = cipher_size_of(a.size);
  crypto_secretstream_xchacha20poly1305_keygen(a.key);
  crypto_secretstream_xchacha20poly1305_state ss;
  crypto_secretstream_xchacha20poly1305_init_push(&ss, a.header, a.key);
  int rc = TSR_ENOMEM;
  creq *r = client_req_new("POST", "/v1/blobs");
  uint8_t *plain = malloc(TSR_ATTACHMENT_CHUNK);
  if (!r || !plain || buf_reserve(&r->body, (size_t)a.cipher_size) != 0) goto done;
  uint64_t left = a.size;
  do {
    size_t n = left < TSR_ATTACHMENT_CHUNK ? (size_t)left : TSR_ATTACHMENT_CHUNK;
    size_t got = 0;
    while (got < n) {
      ssize_t k = read(fd, plain + got, n - got);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        rc = TSR_EIO; /* the file changed under us */
        goto done;
      }
      got += (size_t)k;
    }
    left -= n;
    uint8_t *dst = buf_extend(&r->body, n + ABYTES);
    crypto_secretstream_xchacha20poly1305_push(
        &ss, dst, NULL, plain, n, NULL, 0,
        left == 0 ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
  } while (left > 0);
  if (r->body.len != a.cipher_size) {
    rc = TSR_EIO;
    goto done;
  }
  crypto_hash_sha256(a.sha256, r->body.ptr, r->body.len);
  r->has_body = true;
  r->content_type = "application/octet-stream";
  tsr_reply local;
  tsr_reply *rp = reply ? reply : &local;
  if (reply) tsr_reply_clear(reply);
  creq *sent = r;
  r = NULL; /* the client owns it now */
  rc = blob_call(c, sent, rp);
  if (rc == 0) {
    /* {"blob":"<22>","size":N} */
    json_token toks[16];
    int nt = json_parse(rp->body, rp->body_len, toks, 16, NULL);
    int ib = nt > 0 ? json_object_get(rp->body, toks, 0, "blob") : -1;
    int is = nt > 0 ? json_object_get(rp->body, toks, 0, "size") : -1;
    size_t bl = 0;
    uint64_t size = 0;
    if (ib < 0 || is < 0 ||
        json_get_string(rp->body, toks, ib, a.blob, sizeof a.blob, &bl, 0) != 0 ||
        bl != TSR_ID_B64_SIZE - 1 || json_get_u64(rp->body, toks, is, &size) != 0 ||
        size != a.cipher_size)
      rc = TSR_EDECODE;
  }
  if (!reply) tsr_reply_clear(&local);
  if (rc == 0) *out = a;
done:
  sodium_memzero(&ss, sizeof ss);
  sodium_memzero(&a, sizeof a);
  if (plain) sodium_memzero(plain, TSR_ATTACHMENT_CHUNK);
  free(plain);
  client_req_free(r);
  close(fd);
  return rc;
}

int tsr_attachment_download_sync(tsr_client *c, const tsr_attachment *a,
                                 const char *out_path, tsr_reply *reply) {
  if (!c || !a || !out_path || a->blob[TSR_ID_B64_SIZE - 1] != '\0' ||
      strlen(a->blob) != TSR_ID_B64_SIZE - 1 || a->size > TSR_ATTACHMENT_MAX ||
      a->cipher_size != cipher_size_of(a->size))
    return TSR_EINVAL;
  if (!logged_in(c)) return TSR_ESTATE;
  size_t plen = strlen(out_path);
  char *tmp = malloc(plen + 16);
  uint8_t *carry = malloc(CCHUNK), *plain = malloc(TSR_ATTACHMENT_CHUNK);
  if (!tmp || !carry || !plain) {
    free(tmp);
    free(carry);
    free(plain);
    return TSR_ENOMEM;
  }
  snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", out_path);
  int fd = mkstemp(tmp);
  int rc = fd < 0 ? TSR_EIO : 0;
  crypto_secretstream_xchacha20poly1305_state ss;
  crypto_hash_sha256_state hs;
  crypto_hash_sha256_init(&hs);
  if (rc == 0 &&
      crypto_secretstream_xchacha20poly1305_init_pull(&ss, a->header, a->key) != 0)
    rc = TSR_EVERIFY;
  tsr_reply local;
  tsr_reply *rp = reply ? reply : &local;
  memset(&local, 0, sizeof local);
  if (reply) tsr_reply_clear(reply);
  size_t have = 0;      /* ciphertext bytes in carry */
  uint64_t written = 0; /* plaintext bytes */
  bool final = false;
  char path[64];
  snprintf(path, sizeof path, "/v1/blobs/%s", a->blob);
  for (uint64_t off = 0; rc == 0 && off < a->cipher_size;) {
    uint64_t want = a->cipher_size - off < PIECE ? a->cipher_size - off : PIECE;
    creq *r = client_req_new("GET", path);
    if (!r) {
      rc = TSR_ENOMEM;
      break;
    }
    snprintf(r->extra_header, sizeof r->extra_header, "Range: bytes=%llu-%llu",
             (unsigned long long)off, (unsigned long long)(off + want - 1));
    r->raw_answer = true;
    tsr_reply_clear(rp);
    rc = blob_call(c, r, rp);
    if (rc) break;
    bool whole = rp->status == 200 && off == 0 && rp->body_len == a->cipher_size;
    if (!(rp->status == 206 && rp->body_len == want) && !whole) {
      rc = TSR_EVERIFY; /* the blob is not the size the descriptor says */
      break;
    }
    const uint8_t *p = (const uint8_t *)rp->body;
    size_t n = rp->body_len;
    crypto_hash_sha256_update(&hs, p, n);
    off += n;
    while (rc == 0 && n > 0) {
      size_t k = CCHUNK - have < n ? CCHUNK - have : n;
      memcpy(carry + have, p, k);
      have += k;
      p += k;
      n -= k;
      bool last = off == a->cipher_size && n == 0;
      if (have < CCHUNK && !last) continue;
      unsigned long long pl = 0;
      unsigned char tag = 0;
      if (final || have < ABYTES ||
          crypto_secretstream_xchacha20poly1305_pull(&ss, plain, &pl, &tag, carry, have,
                                                     NULL, 0) != 0) {
        rc = TSR_EVERIFY;
        break;
      }
      final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
      if (final != last) {
        rc = TSR_EVERIFY; /* FINAL too early, or missing: truncated */
        break;
      }
      for (size_t w = 0; w < pl;) {
        ssize_t k2 = write(fd, plain + w, (size_t)pl - w);
        if (k2 < 0 && errno == EINTR) continue;
        if (k2 <= 0) {
          rc = TSR_EIO;
          break;
        }
        w += (size_t)k2;
      }
      written += pl;
      have = 0;
    }
  }
  uint8_t digest[32];
  crypto_hash_sha256_final(&hs, digest);
  if (rc == 0 && (!final || written != a->size ||
                  sodium_memcmp(digest, a->sha256, sizeof digest) != 0))
    rc = TSR_EVERIFY;
  if (rc == 0 && (fsync(fd) != 0 || close(fd) != 0)) {
    fd = -1;
    rc = TSR_EIO;
  } else if (rc == 0) {
    fd = -1;
    if (rename(tmp, out_path) != 0) rc = TSR_EIO;
  }
  if (fd >= 0) close(fd);
  if (rc != 0) unlink(tmp);
  if (rc == TSR_EVERIFY)
    local_reply(rp, rc, "tampered",
                "the attachment does not verify (altered or truncated); nothing written");
  if (!reply) tsr_reply_clear(&local);
  sodium_memzero(&ss, sizeof ss);
  sodium_memzero(plain, TSR_ATTACHMENT_CHUNK);
  sodium_memzero(carry, CCHUNK);
  free(tmp);
  free(carry);
  free(plain);
  return rc;
}

/* ---- descriptor ------------------------------------------------------------- */

int tsr_attachment_encode(const tsr_attachment *a, char *out, size_t cap) {
  if (!a || !out || cap == 0) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer jw;
  json_writer_init(&jw, &b, 2);
  json_write_object_begin(&jw);
  json_write_key(&jw, "v");
  json_write_i64(&jw, 1);
  json_write_key(&jw, "blob");
  json_write_string_n(&jw, a->blob, strnlen(a->blob, sizeof a->blob));
  json_write_key(&jw, "key");
  json_write_base64url(&jw, BYTES(a->key, sizeof a->key));
  json_write_key(&jw, "header");
  json_write_base64url(&jw, BYTES(a->header, sizeof a->header));
  json_write_key(&jw, "size");
  json_write_u64(&jw, a->size);
  json_write_key(&jw, "cipher_size");
  json_write_u64(&jw, a->cipher_size);
  json_write_key(&jw, "sha256");
  json_write_base64url(&jw, BYTES(a->sha256, sizeof a->sha256));
  json_write_object_end(&jw);
  int rc = b.err || json_writer_finish(&jw) != 0 ? TSR_ENOMEM : 0;
  if (rc == 0 && b.len + 1 > cap) rc = TSR_ELIMIT;
  if (rc == 0) {
    memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
    rc = (int)b.len;
  }
  buf_free_secret(&b);
  return rc;
}

/* Decodes the base64url string member key of object 0 into exactly n bytes. */
static int get_b64(const char *s, const json_token *t, const char *key, uint8_t *out,
                   size_t n) {
  int i = json_object_get(s, t, 0, key);
  const char *p;
  size_t len = 0, got = 0;
  if (i < 0 || json_get_string_view(s, t, i, &p, &len) != 0) return TSR_EDECODE;
  if (b64_decoded_max(len) != n ||
      b64_decode(out, n, p, len, B64_MODE_URL_NOPAD, &got) != 0 || got != n)
    return TSR_EDECODE;
  return 0;
}

int tsr_attachment_decode(const char *s, size_t n, tsr_attachment *out) {
  if (!s || !out) return TSR_EINVAL;
  json_token t[32];
  if (json_parse(s, n, t, 32, NULL) <= 0 || t[0].type != JSON_OBJECT) return TSR_EDECODE;
  tsr_attachment a;
  memset(&a, 0, sizeof a);
  int iv = json_object_get(s, t, 0, "v"), ib = json_object_get(s, t, 0, "blob");
  int is = json_object_get(s, t, 0, "size"), ic = json_object_get(s, t, 0, "cipher_size");
  int64_t v = 0;
  size_t bl = 0;
  int rc = TSR_EDECODE;
  if (iv < 0 || json_get_i64(s, t, iv, &v) != 0 || v != 1) goto done;
  if (ib < 0 || json_get_string(s, t, ib, a.blob, sizeof a.blob, &bl, 0) != 0 ||
      bl != TSR_ID_B64_SIZE - 1)
    goto done;
  if (is < 0 || json_get_u64(s, t, is, &a.size) != 0 || ic < 0 ||
      json_get_u64(s, t, ic, &a.cipher_size) != 0 || a.size > TSR_ATTACHMENT_MAX ||
      a.cipher_size != cipher_size_of(a.size))
    goto done;
  if (get_b64(s, t, "key", a.key, sizeof a.key) ||
      get_b64(s, t, "header", a.header, sizeof a.header) ||
      get_b64(s, t, "sha256", a.sha256, sizeof a.sha256))
    goto done;
  *out = a;
  rc = 0;
done:
  sodium_memzero(&a, sizeof a);
  return rc;
}
