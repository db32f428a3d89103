/* `tessera chat add|remove|leave|promote|demote|members`: group commands
 * (tessera.h, "Conversations: groups"). Each opens the chat, lets it catch
 * up (joins, syncs, devices kept in step), runs the operation to its end
 * and prints the outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/json.h"

#define SETTLE_MS 10000

typedef struct {
  bool done;
  int err;
  char code[48];
  char message[256];
  char *body;
  size_t body_len;
} outcome;

static void on_outcome(void *arg, const tsr_result *res) {
  outcome *o = arg;
  o->done = true;
  o->err = res->err;
  snprintf(o->code, sizeof o->code, "%s", res->code ? res->code : "");
  snprintf(o->message, sizeof o->message, "%s", res->message ? res->message : "");
  o->body = malloc(res->body_len + 1);
  if (o->body) {
    if (res->body_len) memcpy(o->body, res->body, res->body_len);
    o->body[res->body_len] = '\0';
    o->body_len = res->body_len;
  }
}

static int is_done(void *arg) { return ((outcome *)arg)->done; }
static int is_idle(void *arg) { return tsr_chat_pending(arg) == 0; }

static tsr_chat *group_chat(tsr_client *c) {
  tsr_chat *h = NULL;
  int rc = tsr_chat_new(c, NULL, &h);
  if (rc == TSR_ESTATE) die("state", "not logged in");
  if (rc) die_call(rc, NULL, "chat");
  tsr_reply r = {0};
  rc = tsr_conversations_refresh_sync(h, &r);
  if (rc) die_call(rc, &r, "conversations");
  tsr_reply_clear(&r);
  return h;
}

/* Runs the chat until o is answered, then until what it started settled. */
static void finish(tsr_chat *h, outcome *o, const char *what) {
  if (tsr_chat_run(h, SETTLE_MS, is_done, o) != 0 || !o->done)
    die("timeout", "%s: no answer", what);
  tsr_chat_run(h, SETTLE_MS, is_idle, h);
  tsr_chat_free(h);
  if (o->err) die(o->code[0] ? o->code : "local", "%s: %s", what, o->message);
}

static const char *need_conv(const char *v) {
  if (strlen(v) != TSR_ID_B64_SIZE - 1) die("usage", "%s is not a conversation id", v);
  return v;
}

static const char *need_account(const char *v) {
  if (strlen(v) != TSR_ID_B64_SIZE - 1) die("usage", "%s is not an account id", v);
  return v;
}

static const char *app_of(const char *v) {
  if (strcmp(v, "chat") && strcmp(v, "social") && strcmp(v, "messenger"))
    die("usage", "unknown app %s (chat, social or messenger)", v);
  return v;
}

/* chat add CONV WHO:APP... [--with-account ID:APP]... */
static int group_add(tsr_client *c, int argc, char **argv) {
  if (argc < 3) die("usage", "chat add CONV WHO:APP... [--with-account ACCOUNT_ID:APP]");
  const char *conv = need_conv(argv[1]);
  tsr_member m[63];
  size_t n = 0;
  for (int i = 2; i < argc; i++) {
    bool by_id = !strcmp(argv[i], "--with-account");
    char *v = by_id ? (char *)optval(argc, argv, &i) : argv[i];
    char *colon = strrchr(v, ':');
    if (!colon || colon == v || n == 63) die("usage", "%s: WHO:APP (at most 63)", v);
    *colon = '\0';
    m[n++] = (tsr_member){.account = by_id ? need_account(v) : NULL,
                          .app = app_of(colon + 1),
                          .key = by_id ? NULL : v};
  }
  tsr_chat *h = group_chat(c);
  outcome o = {0};
  int rc = tsr_conversation_add(h, conv, m, n, on_outcome, &o);
  if (rc) die_call(rc, NULL, "chat add (a conversation active on this device?)");
  finish(h, &o, "chat add");
  if (json_out)
    puts(o.body ? o.body : "{}");
  else
    printf("added %zu\n", n);
  free(o.body);
  return 0;
}

/* chat remove CONV ACCOUNT_ID... */
static int group_remove(tsr_client *c, int argc, char **argv) {
  if (argc < 3) die("usage", "chat remove CONV ACCOUNT_ID...");
  const char *conv = need_conv(argv[1]);
  const char *acc[63];
  size_t n = 0;
  for (int i = 2; i < argc && n < 63; i++) acc[n++] = need_account(argv[i]);
  tsr_chat *h = group_chat(c);
  outcome o = {0};
  int rc = tsr_conversation_remove(h, conv, acc, n, on_outcome, &o);
  if (rc) die_call(rc, NULL, "chat remove (a conversation active on this device?)");
  finish(h, &o, "chat remove");
  if (json_out)
    puts(o.body ? o.body : "{}");
  else
    printf("removed %zu\n", n);
  free(o.body);
  return 0;
}

static int group_leave(tsr_client *c, const char *conv) {
  tsr_chat *h = group_chat(c);
  outcome o = {0};
  int rc = tsr_conversation_leave(h, need_conv(conv), on_outcome, &o);
  if (rc == TSR_ESTATE) die("state", "you already left this conversation");
  if (rc) die_call(rc, NULL, "chat leave");
  finish(h, &o, "chat leave");
  if (json_out)
    puts(o.body ? o.body : "{}");
  else
    printf("left\n");
  free(o.body);
  return 0;
}

static int group_role(tsr_client *c, const char *conv, const char *account, bool admin) {
  tsr_chat *h = group_chat(c);
  outcome o = {0};
  int rc = tsr_conversation_set_role(h, need_conv(conv), need_account(account), admin,
                                     on_outcome, &o);
  if (rc) die_call(rc, NULL, admin ? "chat promote" : "chat demote");
  finish(h, &o, admin ? "chat promote" : "chat demote");
  if (json_out)
    puts(o.body ? o.body : "{}");
  else
    printf("%s is %s\n", account, admin ? "admin" : "member");
  free(o.body);
  return 0;
}

/* chat members CONV: the server's roster with roles. */
static int group_members(tsr_client *c, const char *conv) {
  tsr_chat *h = group_chat(c);
  outcome o = {0};
  int rc = tsr_conversation_details(h, need_conv(conv), on_outcome, &o);
  if (rc) die_call(rc, NULL, "chat members");
  finish(h, &o, "chat members");
  if (json_out || !o.body) {
    puts(o.body ? o.body : "{}");
    free(o.body);
    return 0;
  }
  size_t cap = o.body_len / 2 + 16;
  json_token *t = malloc(cap * sizeof *t);
  if (!t || json_parse(o.body, o.body_len, t, cap, NULL) <= 0)
    die("bad_response", "members");
  int arr = json_object_get(o.body, t, 0, "members");
  for (int e = arr >= 0 ? json_first_child(t, arr) : -1; e >= 0;
       e = json_next_sibling(t, arr, e)) {
    char acc[TSR_ID_B64_SIZE] = "", role[16] = "";
    int a = json_object_get(o.body, t, e, "account"),
        r = json_object_get(o.body, t, e, "role");
    if (a >= 0) json_get_string(o.body, t, a, acc, sizeof acc, NULL, 0);
    if (r >= 0) json_get_string(o.body, t, r, role, sizeof role, NULL, 0);
    printf("%s\t%s\n", acc, role);
  }
  uint64_t devices = 0;
  int d = json_object_get(o.body, t, 0, "devices");
  if (d >= 0) json_get_u64(o.body, t, d, &devices);
  printf("%llu devices\n", (unsigned long long)devices);
  free(t);
  free(o.body);
  return 0;
}

int chat_group_command(tsr_client *c, int argc, char **argv) {
  const char *cmd = argv[0];
  if (!strcmp(cmd, "add")) return group_add(c, argc, argv);
  if (!strcmp(cmd, "remove")) return group_remove(c, argc, argv);
  if (!strcmp(cmd, "leave") && argc == 2) return group_leave(c, argv[1]);
  if ((!strcmp(cmd, "promote") || !strcmp(cmd, "demote")) && argc == 3)
    return group_role(c, argv[1], argv[2], cmd[0] == 'p');
  if (!strcmp(cmd, "members") && argc == 2) return group_members(c, argv[1]);
  return -1;
}
