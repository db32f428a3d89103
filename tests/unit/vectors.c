#include "vectors.h"

#include <stdio.h>
#include <stdlib.h>

#include "tessera/error.h"

#ifndef TSR_SOURCE_DIR
#define TSR_SOURCE_DIR "."
#endif

const char *vec_path(const char *rel) {
  static char path[4096];
  const char *dir = getenv("TSR_VECTORS");
  if (dir && *dir)
    snprintf(path, sizeof path, "%s/%s", dir, rel);
  else
    snprintf(path, sizeof path, "%s/../shared/vectors/%s", TSR_SOURCE_DIR, rel);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fclose(f);
  return path;
}

char *vec_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n + 1))) {
      if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
      } else {
        data[n] = '\0';
        if (len) *len = (size_t)n;
      }
    }
  }
  fclose(f);
  return data;
}

cJSON *vec_load(const char *rel, const char **why) {
  const char *path = vec_path(rel);
  if (!path) {
    *why = "../shared/vectors not found (set TSR_VECTORS to its path)";
    return NULL;
  }
  char *text = vec_read_file(path, NULL);
  if (!text) {
    *why = "cannot read vector file";
    return NULL;
  }
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (!j) *why = "vector file is not valid JSON";
  return j;
}

int vec_hex(const cJSON *obj, const char *key, buf_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) return TSR_ENOTFOUND;
  if (cJSON_IsNull(v)) {
    buf_reset(out);
    return 1;
  }
  if (!cJSON_IsString(v)) return TSR_EDECODE;
  return hex_decode(v->valuestring, out);
}

long long vec_int(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

bool vec_suite_is(const cJSON *entry, int suite) {
  if (suite == 0) return true;
  return vec_int(entry, "cipher_suite") == suite;
}

void vec_report(const char *file, int suite, int count) {
  if (suite)
    printf("vectors %s suite %d: %d entries checked\n", file, suite, count);
  else
    printf("vectors %s: %d entries checked\n", file, count);
}
