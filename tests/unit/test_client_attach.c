/* libtessera's attachments (src/client/blobs.c) against a real tesserad:
 * encrypt, upload, describe, download and decrypt files of several sizes
 * (empty, exactly one chunk, 3 MiB over several Range requests); a blob
 * altered or truncated on the server's disk, a descriptor cut short and a
 * wrong key all fail with TSR_EVERIFY (or the server's not_found) and
 * leave no output file; an attachment sent through a conversation is
 * received and downloaded by the other member; and the file's content
 * appears nowhere under the server's data directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_harness.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define PW "correct horse battery"
#define MIB (1024u * 1024u)

static server srv;
static char tmpdir[64];

typedef struct {
  int messages, attachments;
  uint64_t last_seq;
  char caption[128];
  char descriptor[TSR_DESCRIPTOR_MAX + 1];
} seen;

static void on_message(void *arg, const tsr_message *m) {
  seen *s = arg;
  s->messages++;
  s->last_seq = m->seq;
  if (m->kind != TSR_KIND_ATTACHMENT) return;
  s->attachments++;
  snprintf(s->caption, sizeof s->caption, "%s", m->text);
  size_t n =
      m->descriptor_len < TSR_DESCRIPTOR_MAX ? m->descriptor_len : TSR_DESCRIPTOR_MAX;
  memcpy(s->descriptor, m->descriptor, n);
  s->descriptor[n] = '\0';
}

typedef struct {
  tsr_client *c;
  tsr_chat *h;
  tsr_session_info info;
  seen ev;
  char path[128];
} person;

static person ann, ben;
static char conv[TSR_ID_B64_SIZE];

static tsr_client *open_client(const char *path) {
  return test_client_open((uint16_t)srv.port, path, 10000);
}

static bool make_person(person *p, const char *login) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, login);
  p->c = open_client(p->path);
  if (!test_social_person(p->c, login, true, 5, &p->info)) return false;
  tsr_chat_config cfg = {.on_message = on_message, .arg = &p->ev};
  CHECK_OK(tsr_chat_new(p->c, &cfg, &p->h));
  return !test_failing();
}

/* ---- files ---- */

/* Writes n bytes to path: random, or marker (16 bytes) repeated when
 * marker is not NULL. */
static bool write_file(const char *path, size_t n, const char *marker) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return false;
  if (marker)
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)marker[i % 16];
  else
    randombytes_buf(p, n);
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(p, 1, n, f) == n;
  if (f && fclose(f) != 0) ok = false;
  free(p);
  return ok;
}

/* Whether the files at a and b exist and hold the same bytes. */
static bool same_file(const char *a, const char *b) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Files in tmpdir whose name starts with prefix. */
static int count_prefixed(const char *prefix) {
  DIR *d = opendir(tmpdir);
  int k = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) k += !strncmp(e->d_name, prefix, strlen(prefix));
  if (d) closedir(d);
  return k;
}

static void blob_path(const tsr_attachment *a, char *out, size_t cap) {
  snprintf(out, cap, "%s/blobs/%s", srv.data, a->blob);
}

/* Whether any file under dir (recursively) contains needle. */
static bool found_in_files(const char *dir, const char *needle) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "grep -rqaF -- '%s' '%s'", needle, dir);
  return system(cmd) == 0;
}

/* Uploads the file at in, checks the blob on disk has cipher_size bytes,
 * and passes the descriptor through encode and decode. */
static bool upload(person *p, const char *in, tsr_attachment *out) {
  tsr_attachment a;
  tsr_reply r = {0};
  CHECK_OK(tsr_attachment_upload_sync(p->c, in, &a, &r));
  CHECK_INT(r.status, 201);
  tsr_reply_clear(&r);
  if (test_failing()) return false;
  char path[400];
  blob_path(&a, path, sizeof path);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == a.cipher_size);
  char json[TSR_ATTACHMENT_JSON_SIZE];
  int n = tsr_attachment_encode(&a, json, sizeof json);
  CHECK(n > 0 && (size_t)n == strlen(json));
  CHECK_ERR(tsr_attachment_encode(&a, json, 16), TSR_ELIMIT);
  n = tsr_attachment_encode(&a, json, sizeof json);
  tsr_attachment b;
  memset(&b, 0xee, sizeof b);
  CHECK_OK(tsr_attachment_decode(json, n > 0 ? (size_t)n : 0, &b));
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  *out = b;
  sodium_memzero(&a, sizeof a);
  return !test_failing();
}

/* A file of n random bytes survives the round trip. */
static void round_trip(size_t n, const char *name) {
  char in[128], out[128];
  snprintf(in, sizeof in, "%s/%s.in", tmpdir, name);
  snprintf(out, sizeof out, "%s/%s.out", tmpdir, name);
  CHECK(write_file(in, n, NULL));
  tsr_attachment a;
  if (!upload(&ann, in, &a)) return;
  CHECK_INT((long long)a.size, (long long)n);
  tsr_reply r = {0};
  CHECK_OK(tsr_attachment_download_sync(ben.c, &a, out, &r));
  tsr_reply_clear(&r);
  CHECK(same_file(in, out));
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s.out.tmp-", name);
  CHECK_INT(count_prefixed(prefix), 0);
  /* out is replaced by a second download. */
  CHECK(write_file(out, 10, NULL));
  CHECK_OK(tsr_attachment_download_sync(ann.c, &a, out, NULL));
  CHECK(same_file(in, out));
  unlink(in);
  unlink(out);
}

/* ---- tests ---- */

static void test_setup(void) {
  CHECK(make_person(&ann, "ann"));
  CHECK(make_person(&ben, "ben"));
}

static void test_arguments(void) {
  if (!ann.c) TEST_SKIP("no client");
  tsr_attachment a;
  char path[128];
  snprintf(path, sizeof path, "%s/missing", tmpdir);
  CHECK_ERR(tsr_attachment_upload_sync(ann.c, path, &a, NULL), TSR_EIO);
  CHECK_ERR(tsr_attachment_upload_sync(ann.c, tmpdir, &a, NULL), TSR_EIO);
  CHECK_ERR(tsr_attachment_upload_sync(NULL, path, &a, NULL), TSR_EINVAL);
  CHECK_ERR(tsr_attachment_decode("{}", 2, &a), TSR_EDECODE);
  CHECK_ERR(tsr_attachment_decode("not json", 8, &a), TSR_EDECODE);
  memset(&a, 0, sizeof a);
  CHECK_ERR(tsr_attachment_download_sync(ann.c, &a, path, NULL), TSR_EINVAL);
  /* Sizes that would overflow the ciphertext size are refused. */
  memset(a.blob, 'A', TSR_ID_B64_SIZE - 1);
  a.size = UINT64_MAX - 3;
  /* cipher_size as the formula gives it, wrapping around 2^64. */
  a.cipher_size =
      a.size + (a.size + TSR_ATTACHMENT_CHUNK - 1) / TSR_ATTACHMENT_CHUNK * 17;
  CHECK_ERR(tsr_attachment_download_sync(ann.c, &a, path, NULL), TSR_EINVAL);
}

static void test_round_trip_3mib(void) {
  if (!ann.c || !ben.c) TEST_SKIP("no clients");
  round_trip(3 * MIB, "big");
}

static void test_empty_and_one_chunk(void) {
  if (!ann.c || !ben.c) TEST_SKIP("no clients");
  round_trip(0, "empty");
  round_trip(TSR_ATTACHMENT_CHUNK, "chunk");
  round_trip(TSR_ATTACHMENT_CHUNK + 1, "chunk1");
}

/* Uploads n random bytes as name.in; out_path gets name.out (absent). */
static bool prepared(const char *name, size_t n, tsr_attachment *a, char *in, char *out) {
  snprintf(in, 128, "%s/%s.in", tmpdir, name);
  snprintf(out, 128, "%s/%s.out", tmpdir, name);
  CHECK(write_file(in, n, NULL));
  return upload(&ann, in, a);
}

/* A download that must fail with err: no output, no temporary left. */
static void refused(const tsr_attachment *a, const char *out, int err, const char *code) {
  tsr_reply r = {0};
  CHECK_ERR(tsr_attachment_download_sync(ben.c, a, out, &r), err);
  CHECK(r.done && r.code && !strcmp(r.code, code));
  if (r.code && strcmp(r.code, code))
    fprintf(stderr, "  code %s: %s\n", r.code, r.message ? r.message : "");
  tsr_reply_clear(&r);
  CHECK(!exists(out));
  const char *slash = strrchr(out, '/');
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.tmp-", slash ? slash + 1 : out);
  CHECK_INT(count_prefixed(prefix), 0);
}

static void test_tampered(void) {
  if (!ann.c || !ben.c) TEST_SKIP("no clients");
  char in[128], out[128], path[400];
  tsr_attachment a;
  if (!prepared("tamper", 3 * MIB / 2, &a, in, out)) return;
  blob_path(&a, path, sizeof path);
  /* One byte flipped in the second 1 MiB piece: earlier chunks already
   * decrypted, the file must still not appear. */
  int fd = open(path, O_RDWR);
  uint8_t b = 0;
  CHECK(fd >= 0 && pread(fd, &b, 1, MIB + 5) == 1);
  b ^= 0x01;
  CHECK(fd >= 0 && pwrite(fd, &b, 1, MIB + 5) == 1);
  if (fd >= 0) close(fd);
  refused(&a, out, TSR_EVERIFY, "tampered");
  unlink(in);
}

static void test_truncated(void) {
  if (!ann.c || !ben.c) TEST_SKIP("no clients");
  char in[128], out[128], path[400];
  tsr_attachment a;
  if (!prepared("trunc", 200000, &a, in, out)) return;
  /* The descriptor cut to whole chunks: every tag checks, the FINAL one
   * is missing. */
  tsr_attachment cut = a;
  cut.size = 3 * TSR_ATTACHMENT_CHUNK;
  cut.cipher_size = cut.size + 3 * crypto_secretstream_xchacha20poly1305_ABYTES;
  refused(&cut, out, TSR_EVERIFY, "tampered");
  /* The same with the hash of the shorter blob: still no FINAL. */
  uint8_t *p = malloc(cut.cipher_size);
  char bpath[400];
  blob_path(&a, bpath, sizeof bpath);
  FILE *f = fopen(bpath, "rb");
  CHECK(p && f && fread(p, 1, cut.cipher_size, f) == cut.cipher_size);
  if (f) fclose(f);
  if (p) crypto_hash_sha256(cut.sha256, p, cut.cipher_size);
  free(p);
  refused(&cut, out, TSR_EVERIFY, "tampered");
  /* The blob itself truncated on the server's disk: the server no longer
   * serves it (its size disagrees with its row). */
  blob_path(&a, path, sizeof path);
  CHECK(truncate(path, (off_t)(a.cipher_size - 100)) == 0);
  refused(&a, out, TSR_ENOTFOUND, "not_found");
  unlink(in);
}

static void test_wrong_key(void) {
  if (!ann.c || !ben.c) TEST_SKIP("no clients");
  char in[128], out[128];
  tsr_attachment a;
  if (!prepared("key", 100000, &a, in, out)) return;
  tsr_attachment w = a;
  w.key[0] ^= 0x80;
  refused(&w, out, TSR_EVERIFY, "tampered");
  w = a;
  w.header[3] ^= 0x01;
  refused(&w, out, TSR_EVERIFY, "tampered");
  w = a;
  w.sha256[31] ^= 0x01;
  refused(&w, out, TSR_EVERIFY, "tampered");
  /* An unknown blob id. */
  w = a;
  w.blob[0] = w.blob[0] == 'A' ? 'B' : 'A';
  refused(&w, out, TSR_ENOTFOUND, "not_found");
  /* The right descriptor still works. */
  CHECK_OK(tsr_attachment_download_sync(ben.c, &a, out, NULL));
  CHECK(same_file(in, out));
  unlink(in);
  unlink(out);
}

/* The server's attachment_max_bytes (4 MiB here) refuses a larger file. */
static void test_too_large(void) {
  if (!ann.c) TEST_SKIP("no client");
  char in[128];
  snprintf(in, sizeof in, "%s/large.in", tmpdir);
  tsr_attachment a;
  /* Just over, and far over: the server answers before reading the body
   * and closes while the client is still writing it. */
  size_t sizes[2] = {4 * MIB, 24 * MIB};
  for (int i = 0; i < 2; i++) {
    CHECK(write_file(in, sizes[i], NULL));
    tsr_reply r = {0};
    CHECK_ERR(tsr_attachment_upload_sync(ann.c, in, &a, &r), TSR_ELIMIT);
    CHECK_INT(r.status, 413);
    CHECK(r.code && !strcmp(r.code, "too_large"));
    tsr_reply_clear(&r);
  }
  unlink(in);
  /* The connection was closed after the refusal: the next call works. */
  snprintf(in, sizeof in, "%s/small.in", tmpdir);
  CHECK(write_file(in, 1000, NULL));
  CHECK_OK(tsr_attachment_upload_sync(ann.c, in, &a, NULL));
  unlink(in);
}

static void test_create_conversation(void) {
  if (!ann.h || !ben.h) TEST_SKIP("no chats");
  CHECK_OK(tsr_conversations_refresh_sync(ben.h, NULL));
  tsr_member m[1] = {{ben.info.account_id, "social", NULL}};
  tsr_conversation_params p = {"social", "direct", m, 1};
  tsr_reply r = {0};
  CHECK_OK(tsr_conversation_create_sync(ann.h, &p, &r));
  char *at = r.body ? strstr(r.body, "\"conversation\":\"") : NULL;
  CHECK(at != NULL);
  if (at) snprintf(conv, sizeof conv, "%.22s", at + 16);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_conversations_refresh_sync(ben.h, NULL));
}

/* Runs ben's chat until he has n attachment messages (bounded). */
static bool wait_attachments(int n) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (ben.ev.attachments < n && now_ms() < deadline)
    tsr_chat_run(ben.h, 100, NULL, NULL);
  return ben.ev.attachments >= n;
}

typedef struct {
  int n;
  uint64_t seq;
  char descriptor[TSR_DESCRIPTOR_MAX + 1];
} found_att;

static void find_attachment(void *arg, const tsr_message *m) {
  found_att *f = arg;
  if (m->kind != TSR_KIND_ATTACHMENT) return;
  f->n++;
  f->seq = m->seq;
  snprintf(f->descriptor, sizeof f->descriptor, "%.*s", (int)m->descriptor_len,
           m->descriptor);
}

/* Ann sends a file of n bytes (content marker, or random when NULL) in
 * the conversation; ben receives it and downloads the same bytes. */
static void send_and_receive(size_t n, const char *marker, const char *name) {
  char in[128], out[128];
  snprintf(in, sizeof in, "%s/%s.in", tmpdir, name);
  snprintf(out, sizeof out, "%s/%s.out", tmpdir, name);
  CHECK(write_file(in, n, marker));
  tsr_attachment a;
  if (!upload(&ann, in, &a)) return;
  char json[TSR_ATTACHMENT_JSON_SIZE];
  CHECK(tsr_attachment_encode(&a, json, sizeof json) > 0);
  sodium_memzero(&a, sizeof a);
  int before = ben.ev.attachments;
  tsr_reply r = {0};
  CHECK_OK(tsr_send_attachment_sync(ann.h, conv, json, "the report", 0, &r));
  tsr_reply_clear(&r);
  CHECK(wait_attachments(before + 1));
  CHECK(!strcmp(ben.ev.caption, "the report"));
  CHECK(!strcmp(ben.ev.descriptor, json));
  /* Stored in ben's state as well, found again by its seq. */
  found_att f = {0};
  CHECK_OK(tsr_messages_local(ben.c, conv, 0, find_attachment, &f));
  CHECK(f.n == before + 1 && f.seq == ben.ev.last_seq && !strcmp(f.descriptor, json));
  tsr_attachment b;
  CHECK_OK(tsr_attachment_decode(ben.ev.descriptor, strlen(ben.ev.descriptor), &b));
  CHECK_OK(tsr_attachment_download_sync(ben.c, &b, out, NULL));
  CHECK(same_file(in, out));
  sodium_memzero(&b, sizeof b);
  sodium_memzero(json, sizeof json);
}

static void test_end_to_end(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  send_and_receive(3 * MIB, NULL, "e2e");
}

/* The file's content is nowhere on the server: the search finds it in a
 * plaintext copy (the control), never under the data directory. */
static void test_no_plaintext(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  char marker[17];
  for (int i = 0; i < 8; i++) snprintf(marker + 2 * i, 3, "%02x", rnd[i]);
  send_and_receive(2 * MIB + 12345, marker, "secret");
  char plain[128];
  snprintf(plain, sizeof plain, "%s/plaincopy", tmpdir);
  CHECK(mkdir(plain, 0700) == 0 || errno == EEXIST);
  char copy[200];
  snprintf(copy, sizeof copy, "%s/copy", plain);
  CHECK(write_file(copy, 4096, marker));
  CHECK(found_in_files(plain, marker)); /* the search does see plaintext */
  CHECK(!found_in_files(srv.dir, marker));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-catt-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_attach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *extra[] = {"--rate-per-account",
                                "0",
                                "--rate-per-address",
                                "0",
                                "--attachment-max-bytes",
                                "4m",
                                NULL};
  if (!server_start(&srv, "catt", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_attach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_arguments);
  RUN(test_round_trip_3mib);
  RUN(test_empty_and_one_chunk);
  RUN(test_tampered);
  RUN(test_truncated);
  RUN(test_wrong_key);
  RUN(test_too_large);
  RUN(test_create_conversation);
  RUN(test_end_to_end);
  RUN(test_no_plaintext);
  person *all[2] = {&ann, &ben};
  for (int i = 0; i < 2; i++) {
    tsr_chat_free(all[i]->h);
    tsr_client_free(all[i]->c);
  }
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_attach");
}
