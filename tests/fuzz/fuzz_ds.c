/* libFuzzer: the delivery service's handling of frames from a worker
 * (server/dsproto.h): every type, with arbitrary fields, against a real
 * store in a temporary directory. The state carries over between inputs
 * (conversations made by one input are there for the next), as it would
 * in the process. Seeds: tests/fuzz/corpus/ds (first byte the frame type). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "mls/crypto.h"
#include "server/ds.h"
#include "server/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    static char dir[] = "/tmp/tsr-fuzz-ds-XXXXXX";
    log_open("/dev/null", LOG_ERROR);
    if (crypto_init() != 0 || !mkdtemp(dir) || ds_fuzz_setup(dir) != 0) abort();
    ready = 1;
  }
  ds_fuzz_frame(data, size);
  return 0;
}
