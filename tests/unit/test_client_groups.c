/* Group operations and multi-device conversations (src/client/group.c and
 * the delivery service's membership rules) against a real tesserad:
 *
 *   - an admin adds a person by profile; the person joins from the
 *     Welcome and talks; a plain member may not remove anyone; an admin
 *     promotes a member, who then removes someone;
 *   - two admins add two people at the same epoch: one commit wins, the
 *     other device processes the winner, builds its commit again, and in
 *     the end every device has the same members and reads everyone;
 *   - a second device linked to an account is added to its conversations
 *     by the account's first device (pushed "devices"), sees messages from
 *     then on; revoking it gets it removed from the MLS group;
 *   - a member leaves with a Remove proposal; an admin commits it and the
 *     group goes on without them;
 *   - three people on the three apps (chat by phone number, social,
 *     messenger), two devices each: a group and a direct conversation in
 *     which every device sends; all devices of the members hold the same
 *     messages at the same seqs;
 *   - no notice while keys are as first seen; after the server's store
 *     swaps gus's identity key, fay's next chat notices it in the group
 *     ("identity_changed") and his devices as not certified by it. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_harness.h"
#include "proto/base64.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define PW "correct horse battery"
#define NP 12

typedef struct {
  tsr_client *c;
  tsr_chat *h;
  tsr_session_info info;
  int messages;
  char last_text[128];
  char path[128];
} person;

static server srv;
static char tmpdir[64];
static person ann, ben, cat, dan, eve, ben2, fay, fay2, gus, gus2, hal, hal2;
static person *all[NP] = {&ann, &ben,  &cat, &dan,  &eve, &ben2,
                          &fay, &fay2, &gus, &gus2, &hal, &hal2};
static char conv[TSR_ID_B64_SIZE];
static char fay_group[TSR_ID_B64_SIZE];

static void on_message(void *arg, const tsr_message *m) {
  person *p = arg;
  p->messages++;
  snprintf(p->last_text, sizeof p->last_text, "%s", m->text ? m->text : "");
}

static tsr_client *open_client(const char *path) {
  return test_client_open((uint16_t)srv.port, path, 5000);
}

static void open_chat(person *p) {
  tsr_chat_config cfg = {.on_message = on_message, .arg = p};
  CHECK_OK(tsr_chat_new(p->c, &cfg, &p->h));
}

static bool make_person(person *p, const char *login) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, login);
  p->c = open_client(p->path);
  if (!test_social_person(p->c, login, true, 5, &p->info)) return false;
  open_chat(p);
  return !test_failing();
}

/* Drives every open chat a little. */
static void run_all(void) {
  for (int i = 0; i < NP; i++)
    if (all[i]->h) tsr_chat_run(all[i]->h, 5, NULL, NULL);
}

typedef struct {
  bool done;
  int err;
  char code[32];
  char body[2048];
} result;

static void on_result(void *arg, const tsr_result *res) {
  result *r = arg;
  r->done = true;
  r->err = res->err;
  snprintf(r->code, sizeof r->code, "%s", res->code ? res->code : "");
  snprintf(r->body, sizeof r->body, "%.*s", (int)res->body_len,
           res->body ? res->body : "");
}

static bool wait_result(result *r) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (!r->done && now_ms() < deadline) run_all();
  return r->done;
}

/* MLS members (devices) of conv in p's state file, and its state. */
static uint64_t leaves_of(person *p, char state[16]) {
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  uint64_t k = 0;
  if (state) state[0] = '\0';
  if (tsr_conversations_local(p->c, &v, &n) == 0)
    for (size_t i = 0; i < n; i++)
      if (!strcmp(v[i].id, conv)) {
        k = v[i].members;
        if (state) snprintf(state, 16, "%s", v[i].state);
      }
  free(v);
  return k;
}

/* Runs everyone until each of ps has conv with `leaves` MLS members. */
static bool wait_leaves(person **ps, int n, uint64_t leaves) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  for (;;) {
    bool ok = true;
    for (int i = 0; i < n; i++) ok &= leaves_of(ps[i], NULL) == leaves;
    if (ok) return true;
    if (now_ms() > deadline) return false;
    run_all();
  }
}

static bool wait_text(person *p, const char *text) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (strcmp(p->last_text, text) && now_ms() < deadline) run_all();
  return !strcmp(p->last_text, text);
}

static void send_text(person *p, const char *text) {
  result r = {0};
  CHECK_OK(tsr_send_text(p->h, conv, text, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
}

/* Links a second device of p as p2 (state file NAME.db) and opens its chat. */
static bool link_device(person *p, person *p2, const char *name) {
  snprintf(p2->path, sizeof p2->path, "%s/%s.db", tmpdir, name);
  p2->c = open_client(p2->path);
  char key[TSR_KEY_B64_SIZE];
  CHECK_OK(tsr_device_key(p2->c, key));
  tsr_reply r = {0};
  CHECK_OK(tsr_link_code_create_sync(p->c, key, &r));
  char code[32] = "", cert[TSR_CERT_B64_SIZE] = "";
  const char *pc = r.body ? strstr(r.body, "\"code\":\"") : NULL;
  const char *pk = r.body ? strstr(r.body, "\"certificate\":\"") : NULL;
  CHECK(pc && pk);
  size_t cl = pc ? strcspn(pc + 8, "\"") : 0, kl = pk ? strcspn(pk + 15, "\"") : 0;
  CHECK(pc && pk && cl < sizeof code && kl < sizeof cert);
  if (pc && pk && cl < sizeof code && kl < sizeof cert) {
    memcpy(code, pc + 8, cl);
    memcpy(cert, pk + 15, kl);
  }
  tsr_reply_clear(&r);
  CHECK_OK(tsr_device_link_sync(p2->c, code, cert, name, &r));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_client_session(p2->c, &p2->info));
  open_chat(p2);
  return !test_failing();
}

/* ---- tests ---- */

static void test_setup(void) {
  CHECK(make_person(&ann, "ann"));
  CHECK(make_person(&ben, "ben"));
  CHECK(make_person(&cat, "cat"));
  CHECK(make_person(&dan, "dan"));
  CHECK(make_person(&eve, "eve"));
}

static void test_add_promote_remove(void) {
  if (!eve.h) TEST_SKIP("no people");
  tsr_member m = {.app = "social", .key = "@ben"};
  tsr_conversation_params cp = {
      .app = "social", .kind = "group", .members = &m, .n_members = 1};
  result r = {0};
  CHECK_OK(tsr_conversation_create(ann.h, &cp, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  const char *p = strstr(r.body, "\"conversation\":\"");
  CHECK(p != NULL);
  if (!p) return;
  snprintf(conv, sizeof conv, "%.*s", TSR_ID_B64_SIZE - 1, p + 16);
  CHECK(wait_leaves((person *[]){&ann, &ben}, 2, 2));

  /* ann (admin) adds cat by profile; cat joins and talks. */
  tsr_member mc = {.app = "social", .key = "@cat"};
  r = (result){0};
  CHECK_OK(tsr_conversation_add(ann.h, conv, &mc, 1, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  CHECK(wait_leaves((person *[]){&ann, &ben, &cat}, 3, 3));
  send_text(&cat, "cat is here");
  CHECK(wait_text(&ann, "cat is here"));
  CHECK(wait_text(&ben, "cat is here"));

  /* ben is no admin: removing cat is refused, and nothing changes. */
  const char *victim = cat.info.account_id;
  r = (result){0};
  CHECK_OK(tsr_conversation_remove(ben.h, conv, &victim, 1, on_result, &r));
  CHECK(wait_result(&r));
  CHECK(!strcmp(r.code, "forbidden"));
  CHECK_INT(leaves_of(&ben, NULL), 3);

  /* ann makes ben admin; ben removes cat. */
  r = (result){0};
  CHECK_OK(tsr_conversation_set_role(ann.h, conv, ben.info.account_id, 1, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  CHECK(strstr(r.body, "\"role\":\"admin\"") != NULL);
  r = (result){0};
  CHECK_OK(tsr_conversation_remove(ben.h, conv, &victim, 1, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  CHECK(wait_leaves((person *[]){&ann, &ben}, 2, 2));
  char st[16];
  uint64_t deadline = now_ms() + DEADLINE_MS;
  do {
    run_all();
    leaves_of(&cat, st);
  } while (strcmp(st, "removed") && now_ms() < deadline);
  CHECK(!strcmp(st, "removed"));
  send_text(&ann, "after cat");
  CHECK(wait_text(&ben, "after cat"));
  CHECK(strcmp(cat.last_text, "after cat") != 0);
}

static void test_concurrent_adds(void) {
  if (!conv[0]) TEST_SKIP("no group");
  /* Both admins commit an Add in the same epoch. */
  tsr_member md = {.app = "social", .key = "dan"}, me = {.app = "social", .key = "eve"};
  result r1 = {0}, r2 = {0};
  CHECK_OK(tsr_conversation_add(ann.h, conv, &md, 1, on_result, &r1));
  CHECK_OK(tsr_conversation_add(ben.h, conv, &me, 1, on_result, &r2));
  CHECK(wait_result(&r1));
  CHECK(wait_result(&r2));
  CHECK_INT(r1.err, 0);
  CHECK_INT(r2.err, 0);
  CHECK(wait_leaves((person *[]){&ann, &ben, &dan, &eve}, 4, 4));
  send_text(&dan, "dan says hi");
  CHECK(wait_text(&eve, "dan says hi"));
  CHECK(wait_text(&ann, "dan says hi"));
  send_text(&eve, "eve too");
  CHECK(wait_text(&dan, "eve too"));
  CHECK(wait_text(&ben, "eve too"));
}

static void test_linked_device(void) {
  if (!conv[0]) TEST_SKIP("no group");
  send_text(&ann, "before the second device");
  CHECK(wait_text(&ben, "before the second device"));
  /* ben links a second device. */
  CHECK(link_device(&ben, &ben2, "ben2"));
  tsr_reply r = {0};
  /* Its KeyPackages make the server tell ben's first device, which adds it. */
  CHECK_OK(tsr_keypackages_replenish_sync(ben2.c, 1, 5, &r));
  tsr_reply_clear(&r);
  CHECK(wait_leaves((person *[]){&ann, &ben, &dan, &eve, &ben2}, 5, 5));
  send_text(&eve, "to both of ben's devices");
  CHECK(wait_text(&ben2, "to both of ben's devices"));
  CHECK(wait_text(&ben, "to both of ben's devices"));
  CHECK_INT(ben2.messages, 1); /* nothing from before it joined */
  /* ben2 talks: everyone reads it. */
  send_text(&ben2, "from ben's second device");
  CHECK(wait_text(&ann, "from ben's second device"));
  CHECK(wait_text(&ben, "from ben's second device"));

  /* Revoked: ben's first device removes it from the group. */
  CHECK_OK(tsr_device_revoke_sync(ben.c, ben2.info.device_id, &r));
  tsr_reply_clear(&r);
  tsr_chat_free(ben2.h);
  ben2.h = NULL;
  CHECK(wait_leaves((person *[]){&ann, &ben, &dan, &eve}, 4, 5 - 1));
  send_text(&ann, "after the revocation");
  CHECK(wait_text(&ben, "after the revocation"));
}

static void test_leave(void) {
  if (!conv[0]) TEST_SKIP("no group");
  result r = {0};
  CHECK_OK(tsr_conversation_leave(dan.h, conv, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  char st[16];
  leaves_of(&dan, st);
  CHECK(!strcmp(st, "left"));
  /* An admin's device commits the proposal: dan's device is gone. */
  CHECK(wait_leaves((person *[]){&ann, &ben, &eve}, 3, 3));
  r = (result){0};
  CHECK_OK(tsr_conversation_details(ann.h, conv, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  CHECK(strstr(r.body, dan.info.account_id) == NULL);
  CHECK(strstr(r.body, "\"devices\":3") != NULL);
  send_text(&eve, "dan left");
  CHECK(wait_text(&ann, "dan left"));
  CHECK(strcmp(dan.last_text, "dan left") != 0);
  /* dan may send nothing more. */
  r = (result){0};
  CHECK_OK(tsr_send_text(dan.h, conv, "still here?", on_result, &r));
  CHECK(wait_result(&r));
  CHECK(r.err != 0);
}

/* p's stored messages of c as "seq:text|..." */
static void history(person *p, const char *c, char *out, size_t cap);
typedef struct {
  char *out;
  size_t cap, len;
} hist;

static void add_hist(void *arg, const tsr_message *m) {
  hist *h = arg;
  int n = snprintf(h->out + h->len, h->cap - h->len, "%llu:%s|",
                   (unsigned long long)m->seq, m->text ? m->text : "");
  if (n > 0 && (size_t)n < h->cap - h->len) h->len += (size_t)n;
}

static void history(person *p, const char *c, char *out, size_t cap) {
  hist h = {out, cap, 0};
  out[0] = '\0';
  tsr_messages_local(p->c, c, 0, add_hist, &h);
}

/* A person with a second device; both with KeyPackages. */
static bool two_devices(person *p, person *p2, const char *login, const char *app,
                        const char *profile, const char *phone) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, login);
  p->c = open_client(p->path);
  tsr_register_params rp = {.login = login, .password = PW, .device_name = "one"};
  tsr_reply r = {0};
  CHECK_OK(tsr_account_register_sync(p->c, &rp, &r));
  tsr_reply_clear(&r);
  char body[160], code[8] = "";
  if (phone) {
    snprintf(body, sizeof body, "{\"phone\":\"%s\"}", phone);
    CHECK_OK(tsr_call_sync(p->c, "POST", "/v1/phone/codes", body, &r));
    tsr_reply_clear(&r);
    CHECK(sms_code(srv.data, phone, code));
    snprintf(body, sizeof body, "{\"phone\":\"%s\",\"code\":\"%s\"}", phone, code);
    CHECK_OK(tsr_call_sync(p->c, "POST", "/v1/phone/verify", body, &r));
    tsr_reply_clear(&r);
  }
  char path[64];
  snprintf(path, sizeof path, "/v1/apps/%s/profile", app);
  CHECK_OK(tsr_call_sync(p->c, "PUT", path, profile, &r));
  tsr_reply_clear(&r);
  snprintf(path, sizeof path, "/v1/apps/%s/reachability", app);
  CHECK_OK(tsr_call_sync(p->c, "PUT", path,
                         "{\"from\":{\"chat\":\"everyone\",\"social\":\"everyone\","
                         "\"messenger\":\"everyone\"}}",
                         &r));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_client_session(p->c, &p->info));
  open_chat(p);
  CHECK(link_device(p, p2, login[0] == 'f' ? "fay2" : login[0] == 'g' ? "gus2" : "hal2"));
  CHECK_OK(tsr_keypackages_replenish_sync(p->c, 1, 5, &r));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_keypackages_replenish_sync(p2->c, 1, 5, &r));
  tsr_reply_clear(&r);
  return !test_failing();
}

/* Every device sends into c, then all hold the same messages at the same seqs. */
static void all_send_same_order(person **ps, int n, const char *c) {
  char saved[TSR_ID_B64_SIZE];
  memcpy(saved, conv, sizeof saved);
  memcpy(conv, c, sizeof conv);
  for (int i = 0; i < n; i++) {
    char text[64];
    snprintf(text, sizeof text, "from device %d", i);
    send_text(ps[i], text);
  }
  char last[64];
  snprintf(last, sizeof last, "from device %d", n - 1);
  for (int i = 0; i < n - 1; i++) CHECK(wait_text(ps[i], last));
  static char first[8192], other[8192];
  history(ps[0], c, first, sizeof first);
  for (int i = 0; i < n; i++) {
    char text[64];
    snprintf(text, sizeof text, ":from device %d|", i);
    CHECK(strstr(first, text) != NULL);
  }
  for (int i = 1; i < n; i++) {
    history(ps[i], c, other, sizeof other);
    CHECK(!strcmp(first, other));
  }
  memcpy(conv, saved, sizeof conv);
}

static void test_three_apps_two_devices(void) {
  CHECK(two_devices(&fay, &fay2, "fay", "chat", "{\"name\":\"Fay\"}", "+15550177"));
  CHECK(two_devices(&gus, &gus2, "gus", "social", "{\"handle\":\"gus\"}", NULL));
  CHECK(two_devices(&hal, &hal2, "hal", "messenger", "{\"username\":\"hal\"}", NULL));
  if (test_failing()) return;
  /* A group of the chat app, made by fay's first device, naming the others
   * by their profiles on their own apps; it takes fay's second device in. */
  tsr_member m[2] = {{.app = "social", .key = "@gus"},
                     {.app = "messenger", .key = "hal"}};
  tsr_conversation_params cp = {
      .app = "chat", .kind = "group", .members = m, .n_members = 2};
  result r = {0};
  CHECK_OK(tsr_conversation_create(fay.h, &cp, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  const char *p = strstr(r.body, "\"conversation\":\"");
  if (!p) return;
  char g[TSR_ID_B64_SIZE];
  snprintf(g, sizeof g, "%.*s", TSR_ID_B64_SIZE - 1, p + 16);
  memcpy(fay_group, g, sizeof fay_group);
  person *six[6] = {&fay, &fay2, &gus, &gus2, &hal, &hal2};
  memcpy(conv, g, sizeof conv);
  CHECK(wait_leaves(six, 6, 6));
  all_send_same_order(six, 6, g);
  /* A direct conversation, social to messenger, between gus and hal. */
  tsr_member mh = {.app = "messenger", .key = "hal"};
  tsr_conversation_params dp = {
      .app = "social", .kind = "direct", .members = &mh, .n_members = 1};
  r = (result){0};
  CHECK_OK(tsr_conversation_create(gus.h, &dp, on_result, &r));
  CHECK(wait_result(&r));
  CHECK_INT(r.err, 0);
  p = strstr(r.body, "\"conversation\":\"");
  if (!p) return;
  char d[TSR_ID_B64_SIZE];
  snprintf(d, sizeof d, "%.*s", TSR_ID_B64_SIZE - 1, p + 16);
  person *four[4] = {&gus, &gus2, &hal, &hal2};
  memcpy(conv, d, sizeof conv);
  CHECK(wait_leaves(four, 4, 4));
  all_send_same_order(four, 4, d);
}

typedef struct {
  int n, changed, unverified;
  char about[TSR_ID_B64_SIZE];
} notices;

static void count_notice(void *arg, const tsr_notice *n) {
  notices *c = arg;
  c->n++;
  if (!strcmp(n->kind, "identity_changed")) c->changed++;
  if (!strcmp(n->kind, "unverified_device")) c->unverified++;
  snprintf(c->about, sizeof c->about, "%s", n->account);
}

static void test_identity_change(void) {
  if (!fay_group[0]) TEST_SKIP("no group of three apps");
  notices before = {0};
  CHECK_OK(tsr_notices_local(fay.c, fay_group, count_notice, &before));
  CHECK_INT(before.n, 0);
  /* The server's store swaps gus's identity key (a lying server, or an
   * account reset). */
  uint8_t id[16];
  size_t got = 0;
  CHECK_OK(b64_decode(id, sizeof id, gus.info.account_id, strlen(gus.info.account_id),
                      B64_MODE_URL_NOPAD, &got));
  char path[400];
  snprintf(path, sizeof path, "%s/tessera.db", srv.data);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  CHECK_INT(sqlite3_prepare_v2(
                db, "UPDATE accounts SET identity_key = randomblob(32) WHERE id = ?", -1,
                &st, NULL),
            SQLITE_OK);
  sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
  CHECK_INT(sqlite3_step(st), SQLITE_DONE);
  CHECK_INT(sqlite3_changes(db), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
  /* fay's next run of the chat checks the members again. */
  tsr_chat_free(fay.h);
  fay.h = NULL;
  open_chat(&fay);
  result r = {0};
  CHECK_OK(tsr_conversations_refresh(fay.h, on_result, &r));
  CHECK(wait_result(&r));
  notices after = {0};
  uint64_t deadline = now_ms() + DEADLINE_MS;
  do {
    run_all();
    after = (notices){0};
    tsr_notices_local(fay.c, fay_group, count_notice, &after);
  } while ((after.changed == 0 || after.unverified < 2) && now_ms() < deadline);
  CHECK_INT(after.changed, 1);
  CHECK_INT(after.unverified, 2); /* both of gus's devices */
  CHECK(!strcmp(after.about, gus.info.account_id));
  /* Noticed once: another refresh adds nothing. */
  r = (result){0};
  CHECK_OK(tsr_conversations_refresh(fay.h, on_result, &r));
  CHECK(wait_result(&r));
  for (int i = 0; i < 50; i++) run_all();
  notices again = {0};
  tsr_notices_local(fay.c, fay_group, count_notice, &again);
  CHECK_INT(again.n, after.n);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-groups-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_groups: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *extra[] = {"--rate-per-account", "0", "--rate-per-address", "0",
                                NULL};
  if (!server_start(&srv, "groups", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_groups: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_add_promote_remove);
  RUN(test_concurrent_adds);
  RUN(test_linked_device);
  RUN(test_leave);
  RUN(test_three_apps_two_devices);
  RUN(test_identity_change);
  for (int i = 0; i < NP; i++) {
    tsr_chat_free(all[i]->h);
    tsr_client_free(all[i]->c);
  }
  server_stop(&srv, true);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_groups");
}
