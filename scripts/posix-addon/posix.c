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
 * the calling thread, changed nothing measurable.
 *
 * readF32(fd, float32Array, position, checkFinite): fills the array from the file at `position` with
 * two pread() loops on two threads (one tensor's halves), each checking its half for NaN/Inf while
 * the bytes are still in cache. Returns the index of the first non-finite element, or -1 (always -1
 * unchecked). weights/safetensors/reader.ts uses it for F32 tensors when the tensorflow backend
 * passes it (engine/backends/tensorflow/weights.ts). */
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct part {
  int fd;
  uint32_t *dst;
  size_t n;       /* elements */
  off_t position; /* of dst[0] in the file */
  int check;
  int err;        /* errno of a failed read; -1: the file ended early */
  int64_t bad;    /* first non-finite element of this part, or -1 */
};

/* Index of the first element whose exponent bits are all ones (NaN, +-Inf), or -1. Blocks are
 * or-reduced first (a loop the compiler vectorises); only a block that trips is searched. */
static int64_t first_non_finite(const uint32_t *u, size_t n) {
  const uint32_t E = 0x7f800000u;
  const size_t B = 1024;
  for (size_t at = 0; at < n; at += B) {
    size_t end = n - at < B ? n : at + B;
    uint32_t hit = 0;
    for (size_t i = at; i < end; i++) hit |= ((u[i] & E) == E);
    if (!hit) continue;
    for (size_t i = at; i < end; i++) if ((u[i] & E) == E) return (int64_t)i;
  }
  return -1;
}

static void *read_part(void *arg) {
  struct part *p = arg;
  char *d = (char *)p->dst;
  size_t want = p->n * 4, done = 0;
  p->err = 0;
  p->bad = -1;
  while (done < want) {
    size_t chunk = want - done < ((size_t)1 << 30) ? want - done : ((size_t)1 << 30);
    ssize_t r = pread(p->fd, d + done, chunk, p->position + (off_t)done);
    if (r < 0) {
      if (errno == EINTR) continue;
      p->err = errno;
      return NULL;
    }
    if (r == 0) {
      p->err = -1;
      return NULL;
    }
    done += (size_t)r;
  }
  if (p->check) p->bad = first_non_finite(p->dst, p->n);
  return NULL;
}

static napi_value ReadF32(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  double position = -1;
  bool check = false, is_typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (argc >= 2) napi_is_typedarray(env, argv[1], &is_typed);
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float32_array ||
      napi_get_value_double(env, argv[2], &position) != napi_ok || !(position >= 0) || napi_get_value_bool(env, argv[3], &check) != napi_ok) {
    napi_throw_type_error(env, NULL, "readF32(fd, float32Array, position >= 0, checkFinite: boolean)");
    return NULL;
  }
  /* Two threads pay off from a few MiB; below that, one read in this thread. */
  size_t half = length >= ((size_t)1 << 20) ? (length / 2 + 15) & ~(size_t)15 : length;
  struct part parts[2] = {
    {fd, data, half, (off_t)position, check, 0, -1},
    {fd, (uint32_t *)data + half, length - half, (off_t)position + (off_t)half * 4, check, 0, -1},
  };
  pthread_t t;
  int threaded = parts[1].n > 0 && pthread_create(&t, NULL, read_part, &parts[1]) == 0;
  read_part(&parts[0]);
  if (threaded) pthread_join(t, NULL);
  else if (parts[1].n > 0) read_part(&parts[1]);
  for (int k = 0; k < 2; k++) {
    if (parts[k].err == 0) continue;
    char msg[256];
    if (parts[k].err < 0) {
      snprintf(msg, sizeof msg, "file ended while reading %zu bytes at %.0f", length * 4, position);
      napi_throw_error(env, "truncated", msg);
    } else {
      snprintf(msg, sizeof msg, "reading %zu bytes at %.0f failed: %s", length * 4, position, strerror(parts[k].err));
      napi_throw_error(env, "io_error", msg);
    }
    return NULL;
  }
  int64_t bad = parts[0].bad >= 0 ? parts[0].bad : parts[1].bad >= 0 ? (int64_t)half + parts[1].bad : -1;
  napi_value out;
  napi_create_double(env, (double)bad, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"dup", NULL, Dup, NULL, NULL, NULL, napi_default, NULL},
    {"dup2", NULL, Dup2, NULL, NULL, NULL, napi_default, NULL},
    {"pageAlignedBuffer", NULL, PageAlignedBuffer, NULL, NULL, NULL, napi_default, NULL},
    {"readF32", NULL, ReadF32, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 4, props);
  return exports;
}
