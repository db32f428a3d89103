/*
 * What the files of the tessera CLI share: src/cli/tessera.c (usage,
 * options, dispatch) and the command files src/cli/cli_*.c.
 */
#ifndef TSR_CLI_H
#define TSR_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "tessera/tessera.h"

/* --json: print the server's JSON answers instead of text. */
extern bool json_out;

/* Prints "error: CODE: message" to stderr and exits 1. */
_Noreturn void die(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A call that failed before or after reaching the server: dies with the
 * server's code and message when r holds an answer, else with rc. */
_Noreturn void die_call(int rc, tsr_reply *r, const char *what);
/* The answer's body and a newline on stdout. */
void print_body(const tsr_reply *r);
/* Option value after argv[*i] (advancing *i), or dies. */
const char *optval(int argc, char **argv, int *i);
/* tessera chat [open CONVERSATION]: the interactive mode
 * (src/cli/cli_tui.c); runs until /quit, end of input or a signal.
 * Returns the exit status. */
int chat_tui(tsr_client *c, const char *conversation);

/* chat add|remove|leave|promote|demote|members (cli_group.c); -1 when
 * argv[0] is none of them. */
int chat_group_command(tsr_client *c, int argc, char **argv);

/* chat attach|save (cli_attach.c); -1 when argv[0] is neither. */
int chat_attach_command(tsr_client *c, int argc, char **argv);
/* tessera attach upload FILE | attach download DESCRIPTOR OUT. */
int cmd_attach(tsr_client *c, int argc, char **argv);
/* The public-life commands (cli_public.c): post, story, feed, like, likes,
 * comment, comments, follow, unfollow, close-friends, notifications,
 * report. Returns the exit status, or -1 when cmd is none of them. */
int public_command(tsr_client *c, const char *cmd, int argc, char **argv);
/* "attachment 3.0 MiB" for a descriptor (plain "attachment" when it does
 * not decode), NUL-terminated in out. */
void attach_describe(const char *descriptor, size_t n, char *out, size_t cap);

#endif
