/* A JSON answer parsed once and read by key (internal to libtessera: the
 * conversation files read server answers with it). The text is not
 * copied: it must outlive the pj. */
#ifndef TSR_CLIENT_PJ_H
#define TSR_CLIENT_PJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/json.h"

typedef struct {
  const char *b;
  size_t n;
  json_token *t;
  int nt;
} pj;

/* Parses an object (TSR_EDECODE otherwise, TSR_ENOMEM); pj_free after. */
int pj_parse(pj *p, const char *b, size_t n);
void pj_free(pj *p);
/* The member key of object obj (a token index), or -1. */
int pj_get(const pj *p, int obj, const char *key);
/* The string member key of obj as a view; false when absent or escaped. */
bool pj_view(const pj *p, int obj, const char *key, const char **s, size_t *len);
/* The string member key of obj copied into out (NUL-terminated). */
bool pj_str(const pj *p, int obj, const char *key, char *out, size_t cap);
bool pj_u64(const pj *p, int obj, const char *key, uint64_t *v);

#endif
