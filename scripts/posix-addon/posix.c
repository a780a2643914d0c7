/* The few POSIX calls Node lacks, for the tensorflow backend. Built by `make native`
 * (scripts/native.sh) into node_modules/e5-tfjs-posix; each user falls back when it is absent.
 *
 * dup(), dup2(): engine/backends/tensorflow/quiet.ts points file descriptor 2 at /dev/null while
 * TensorFlow loads and gives the original back after, whatever stderr is (a terminal, a pipe, a
 * file or a socket).
 *
 * pageAlignedBuffer(bytes): an ArrayBuffer of fresh anonymous memory starting on a page boundary
 * (so every 64-byte offset in it is 64-byte aligned), unmapped when the ArrayBuffer is collected.
 * engine/backends/tensorflow/weights.ts loads weights into it: TensorFlow keeps 64-byte-aligned
 * JavaScript memory as the tensor's own rather than copying it. A detached thread faults its pages
 * in while the caller reads into them, so the kernel zeroes pages on one core while the reads copy
 * on the other (e5-large's 1.34 GB: load 1.07-1.10 -> 0.67-0.85 s). Asking for transparent huge
 * pages made the load 4x slower here (the kernel compacts memory to find them); MAP_POPULATE, in
 * the calling thread, changed nothing measurable. */
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int32_t arg(napi_env env, napi_value *argv, size_t i) {
  int32_t v = -1;
  napi_get_value_int32(env, argv[i], &v);
  return v;
}

static napi_value result(napi_env env, int r) {
  napi_value out;
  napi_create_int32(env, r, &out);
  return out;
}

static napi_value Dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return result(env, argc < 1 ? -1 : dup(arg(env, argv, 0)));
}

static napi_value Dup2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return result(env, argc < 2 ? -1 : dup2(arg(env, argv, 0), arg(env, argv, 1)));
}

static void Unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)hint);
}

struct range {
  void *p;
  size_t n;
};

/* Fault the pages in ahead of the reader, on another core: MADV_POPULATE_WRITE never changes what
 * a page holds, so it may race with the reads filling it. */
static void *populate(void *arg) {
  struct range r = *(struct range *)arg;
  free(arg);
#ifdef MADV_POPULATE_WRITE
  const size_t step = 8 << 20;
  for (size_t at = 0; at < r.n; at += step) madvise((char *)r.p + at, r.n - at < step ? r.n - at : step, MADV_POPULATE_WRITE);
#endif
  return NULL;
}

static napi_value PageAlignedBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double bytes = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes) != napi_ok || !(bytes > 0)) {
    napi_throw_range_error(env, NULL, "pageAlignedBuffer(bytes): bytes must be a positive number");
    return NULL;
  }
  size_t size = (size_t)bytes;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    napi_throw_error(env, NULL, "pageAlignedBuffer: mmap failed (out of memory?)");
    return NULL;
  }
  struct range *r = malloc(sizeof *r);
  pthread_t t;
  if (r) {
    r->p = p;
    r->n = size;
    if (pthread_create(&t, NULL, populate, r) == 0) pthread_detach(t);
    else free(r);
  }
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, p, size, Unmap, (void *)size, &buffer) != napi_ok) {
    munmap(p, size);
    napi_throw_error(env, NULL, "pageAlignedBuffer: this Node cannot wrap external memory");
    return NULL;
  }
  napi_adjust_external_memory(env, (int64_t)size, NULL);
  return buffer;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"dup", NULL, Dup, NULL, NULL, NULL, napi_default, NULL},
    {"dup2", NULL, Dup2, NULL, NULL, NULL, napi_default, NULL},
    {"pageAlignedBuffer", NULL, PageAlignedBuffer, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}
