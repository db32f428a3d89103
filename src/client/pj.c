/* Parsed JSON answers for libtessera's chains (pj.h). */
#include "client/pj.h"

#include <stdlib.h>

#include "tessera/error.h"

int pj_parse(pj *p, const char *b, size_t n) {
  p->b = b;
  p->n = n;
  p->nt = 0;
  size_t cap = n / 2 + 16;
  p->t = malloc(cap * sizeof *p->t);
  if (!p->t) return TSR_ENOMEM;
  json_limits lim = {0, 100000};
  p->nt = json_parse(b, n, p->t, cap, &lim);
  if (p->nt <= 0 || p->t[0].type != JSON_OBJECT) {
    free(p->t);
    p->t = NULL;
    return TSR_EDECODE;
  }
  return 0;
}

void pj_free(pj *p) {
  free(p->t);
  p->t = NULL;
}

int pj_get(const pj *p, int obj, const char *key) {
  return obj < 0 ? -1 : json_object_get(p->b, p->t, obj, key);
}

/* The string member key of obj as a view; false when absent or escaped. */
bool pj_view(const pj *p, int obj, const char *key, const char **s, size_t *len) {
  int i = pj_get(p, obj, key);
  return i >= 0 && json_get_string_view(p->b, p->t, i, s, len) == 0;
}

bool pj_str(const pj *p, int obj, const char *key, char *out, size_t cap) {
  int i = pj_get(p, obj, key);
  return i >= 0 && json_get_string(p->b, p->t, i, out, cap, NULL, 0) == 0;
}

bool pj_u64(const pj *p, int obj, const char *key, uint64_t *v) {
  int i = pj_get(p, obj, key);
  return i >= 0 && json_get_u64(p->b, p->t, i, v) == 0;
}
