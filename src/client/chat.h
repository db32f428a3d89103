/* What the conversation files of libtessera share (internal): conv.c (the
 * chat, the state file's conversations, sending and receiving) and
 * group.c (group operations and keeping each conversation's devices in
 * step with the accounts' devices). Threads: the chat's. */
#ifndef TSR_CLIENT_CHAT_H
#define TSR_CLIENT_CHAT_H

#include <sqlite3.h>
#include <stdbool.h>

#include "client/client.h"
#include "mls/group.h"

/* ---- conv.c for group.c ---- */

/* An HTTP call made for a chat may complete after the chat is freed (the
 * client outlives it): its callback gets a ticket instead of the chat.
 * chat_ticket_take frees the ticket and answers the chat, or NULL when it
 * is gone (then touch nothing of it), and the job given at the call. */
typedef struct chat_ticket {
  struct tsr_chat *h;
  void *job;
  struct chat_ticket *next;
} chat_ticket;
chat_ticket *chat_ticket_new(tsr_chat *h, void *job);
tsr_chat *chat_ticket_take(chat_ticket *t, void **job);
/* tsr_call for the chat: cb's arg is a ticket for job. */
int chat_http(tsr_chat *h, const char *method, const char *path, const char *body,
              tsr_result_cb cb, void *job);

/* The chat's client and state database. */
tsr_client *chat_client(tsr_chat *h);
/* A chain of calls started / ended (tsr_chat_pending counts them). */
void chat_job_started(tsr_chat *h);
void chat_job_ended(tsr_chat *h);
/* Syncs conv from its last seq (processing everything), then cb. */
int chat_sync(tsr_chat *h, const char *conv, tsr_result_cb cb, void *arg);
/* Lists the conversations again (joins, states, syncs, then
 * groups_refreshed). */
void chat_refresh(tsr_chat *h);
/* The stored group of conv (*out the caller's, group_free) and its state
 * ("active", "request", ...; may be NULL). TSR_ENOTFOUND, TSR_EIO. */
int chat_group_load(tsr_chat *h, const char *conv, mls_group **out, char state[16]);
/* Stores g as conv's group (its last seq unchanged). */
int chat_group_store(tsr_chat *h, const char *conv, const mls_group *g);
int chat_set_state(tsr_chat *h, const char *conv, const char *state);
/* The chat's group.c and trust.c states, and its configuration. */
struct chat_groups **chat_groups_slot(tsr_chat *h);
struct chat_trust **chat_trust_slot(tsr_chat *h);
const tsr_chat_config *chat_config(tsr_chat *h);

/* ---- group.c for conv.c ---- */

/* From a `conversations` answer entry: this device's role in conv and the
 * devices waiting for removal (base64url ids, n of them). */
void groups_note(tsr_chat *h, const char *conv, bool admin, const char *const *stale,
                 size_t n);
/* A refresh finished: checks this account's devices against every
 * conversation and starts the commits that are due (one at a time). */
void groups_refreshed(tsr_chat *h);
void groups_free(tsr_chat *h);

/* ---- trust.c ---- */

/* Verifies the member devices of conv (NULL: of every conversation)
 * against their accounts' identity keys (asynchronously; one round at a
 * time: asked during a round, every conversation is checked after it). */
void trust_check(tsr_chat *h, const char *conv);
void trust_free(tsr_chat *h);

#endif
