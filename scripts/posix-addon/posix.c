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
 * passes it (engine/backends/tensorflow/weights.ts).
 *
 * readInBackground(jobs, buffers) / backgroundDone(handle) / backgroundJoin(handle, cancel): the
 * same reads, started and left running. `jobs` is a Float64Array of 6 numbers a job (fd, file
 * position, F32 bytes, index into `buffers`, byte offset there, flags: 1 check NaN/Inf, 2 round to
 * bf16); two threads take 1 MiB pieces of them in order, pread each into its slot (bf16: into a
 * scratch of their own, rounded to nearest even into the slot, bit for bit weights/safetensors/half.ts
 * f32ToBF16Bits) and check it while it is in cache. The batch reads through its own dup() of each
 * descriptor, so the caller may close its own at once. backgroundDone: -1 while a thread still
 * works, else the seconds from the start to the last piece. backgroundJoin waits for the threads
 * (cancel: they stop at the next piece) and returns the first failed job in job order, or null.
 * engine/backends/tensorflow/background.ts keeps the buffers referenced until it has joined; when
 * the environment ends first (a worker thread's, or the process's), a cleanup hook cancels and
 * joins, and a handle collected unjoined is joined by its finalizer, so no thread ever writes into
 * memory that was given back. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
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

/* 0, an errno, or -1 when the file ends first. */
static int pread_all(int fd, char *d, size_t want, off_t at) {
  size_t done = 0;
  while (done < want) {
    ssize_t r = pread(fd, d + done, want - done, at + (off_t)done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

static void *read_part(void *arg) {
  struct part *p = arg;
  p->bad = -1;
  p->err = pread_all(p->fd, (char *)p->dst, p->n * 4, p->position);
  if (!p->err && p->check) p->bad = first_non_finite(p->dst, p->n);
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

/* ---- reads in the background ---------------------------------------------------------------- */

#define BG_PIECE ((size_t)1 << 20) /* bytes a thread takes at a time: read, checked while in L2 */
#define BG_THREADS 2
#define BG_CHECK 1
#define BG_BF16 2

struct bg_job {
  int fd;           /* the batch's own descriptor */
  off_t position;   /* of the tensor's first byte in the file */
  size_t bytes;     /* F32 bytes in the file */
  char *dst;        /* the slot: F32 as read, or bf16 (bytes / 2) */
  int flags;
  _Atomic int64_t bad; /* lowest non-finite element seen, INT64_MAX: none */
  _Atomic int err;     /* 0, an errno, or -1: the file ended early */
};

struct bg_batch {
  struct bg_job *jobs;
  size_t njobs;
  size_t *piece_job, *piece_off, npieces;
  _Atomic size_t next;
  _Atomic int cancel;
  _Atomic int running;
  _Atomic int64_t elapsed_ns; /* -1 while running */
  struct timespec start;
  pthread_t threads[BG_THREADS];
  int nthreads;
  int *fds, nfds;
  int joined;
  napi_env env;
  int hooked;
};

static int64_t ns_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)(t.tv_sec - t0->tv_sec) * 1000000000 + (t.tv_nsec - t0->tv_nsec);
}

/* Round to nearest even, as f32ToBF16Bits: NaN keeps its sign and top payload bits, made quiet. */
static void to_bf16(const uint32_t *f, uint16_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t x = f[i];
    out[i] = (x & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((x >> 16) | 0x40) : (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
  }
}

static void *bg_worker(void *arg) {
  struct bg_batch *b = arg;
  uint32_t *scratch = NULL;
  while (!atomic_load(&b->cancel)) {
    size_t k = atomic_fetch_add(&b->next, 1);
    if (k >= b->npieces) break;
    struct bg_job *j = &b->jobs[b->piece_job[k]];
    size_t off = b->piece_off[k], n = j->bytes - off < BG_PIECE ? j->bytes - off : BG_PIECE;
    if (atomic_load(&j->err)) continue; /* this tensor already failed */
    char *into = j->dst + off;
    if (j->flags & BG_BF16) {
      if (!scratch && !(scratch = malloc(BG_PIECE))) {
        int none = 0;
        atomic_compare_exchange_strong(&j->err, &none, ENOMEM);
        continue;
      }
      into = (char *)scratch;
    }
    int e = pread_all(j->fd, into, n, j->position + (off_t)off);
    if (e) {
      int none = 0;
      atomic_compare_exchange_strong(&j->err, &none, e);
      continue;
    }
    if (j->flags & BG_CHECK) {
      int64_t i = first_non_finite((const uint32_t *)into, n / 4);
      if (i >= 0) {
        int64_t at = (int64_t)(off / 4) + i, seen = atomic_load(&j->bad);
        while (at < seen && !atomic_compare_exchange_weak(&j->bad, &seen, at)) {}
      }
    }
    if (j->flags & BG_BF16) to_bf16(scratch, (uint16_t *)j->dst + off / 4, n / 4);
  }
  free(scratch);
  if (atomic_fetch_sub(&b->running, 1) == 1) atomic_store(&b->elapsed_ns, ns_since(&b->start));
  return NULL;
}

/* Waits for the threads (stopping them first when asked) and closes the batch's descriptors. */
static void bg_join(struct bg_batch *b, int cancel) {
  if (b->joined) return;
  if (cancel) atomic_store(&b->cancel, 1);
  for (int i = 0; i < b->nthreads; i++) pthread_join(b->threads[i], NULL);
  for (int i = 0; i < b->nfds; i++) close(b->fds[i]);
  b->joined = 1;
}

static void bg_cleanup_hook(void *arg) {
  struct bg_batch *b = arg;
  b->hooked = 0;
  bg_join(b, 1);
}

static void bg_unhook(struct bg_batch *b) {
  if (b->hooked) napi_remove_env_cleanup_hook(b->env, bg_cleanup_hook, b);
  b->hooked = 0;
}

static void bg_free(struct bg_batch *b) {
  free(b->jobs);
  free(b->piece_job);
  free(b->piece_off);
  free(b->fds);
  free(b);
}

static void bg_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct bg_batch *b = data;
  bg_unhook(b);
  bg_join(b, 1);
  bg_free(b);
}

static struct bg_batch *bg_handle(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value ReadInBackground(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_typed = false, is_array = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  uint32_t nbuf = 0;
  if (argc >= 1) napi_is_typedarray(env, argv[0], &is_typed);
  if (argc >= 2) napi_is_array(env, argv[1], &is_array);
  if (argc < 2 || !is_typed || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length % 6 != 0 || !is_array || napi_get_array_length(env, argv[1], &nbuf) != napi_ok) {
    napi_throw_type_error(env, NULL, "readInBackground(jobs: Float64Array of 6 numbers a job, buffers: ArrayBuffer[])");
    return NULL;
  }
  const double *spec = data;
  size_t njobs = length / 6;
  struct bg_batch *b = calloc(1, sizeof *b);
  if (b) {
    b->jobs = calloc(njobs ? njobs : 1, sizeof *b->jobs);
    b->fds = calloc(njobs ? njobs : 1, sizeof *b->fds);
  }
  if (!b || !b->jobs || !b->fds) {
    if (b) bg_free(b);
    napi_throw_error(env, NULL, "readInBackground: out of memory");
    return NULL;
  }
  b->njobs = njobs;
  b->joined = 1; /* nothing to join until the threads start */
  atomic_store(&b->elapsed_ns, -1);
  const char *bad = NULL;
  size_t npieces = 0;
  for (size_t i = 0; i < njobs && !bad; i++) {
    const double *s = spec + 6 * i;
    int fd = (int)s[0], flags = (int)s[5];
    double bytes = s[2], offset = s[4];
    uint32_t bi = (uint32_t)s[3];
    void *base = NULL;
    size_t blen = 0;
    napi_value buf;
    bool is_ab = false;
    if (!(s[1] >= 0) || !(bytes >= 0) || (uint64_t)bytes % 4 != 0 || !(offset >= 0) || !(s[3] >= 0) || bi >= nbuf) { bad = "a job's position, size or buffer index is out of range"; break; }
    if (napi_get_element(env, argv[1], bi, &buf) != napi_ok || napi_is_arraybuffer(env, buf, &is_ab) != napi_ok || !is_ab ||
        napi_get_arraybuffer_info(env, buf, &base, &blen) != napi_ok) { bad = "buffers must be ArrayBuffers"; break; }
    size_t need = (flags & BG_BF16) ? (size_t)bytes / 2 : (size_t)bytes;
    if (offset + need > blen) { bad = "a job's slot runs past the end of its buffer"; break; }
    b->jobs[i].fd = fd;
    b->jobs[i].position = (off_t)s[1];
    b->jobs[i].bytes = (size_t)bytes;
    b->jobs[i].dst = (char *)base + (size_t)offset;
    b->jobs[i].flags = flags;
    atomic_store(&b->jobs[i].bad, INT64_MAX);
    npieces += ((size_t)bytes + BG_PIECE - 1) / BG_PIECE;
  }
  if (bad) {
    bg_free(b);
    napi_throw_range_error(env, NULL, bad);
    return NULL;
  }
  /* The caller's descriptors, each dup()ed once: the jobs read through the copies. */
  int *orig = calloc(njobs ? njobs : 1, sizeof *orig);
  if (!orig) {
    bg_free(b);
    napi_throw_error(env, NULL, "readInBackground: out of memory");
    return NULL;
  }
  for (size_t i = 0; i < njobs; i++) {
    int k = 0;
    while (k < b->nfds && orig[k] != b->jobs[i].fd) k++;
    if (k == b->nfds) {
      int copy = fcntl(b->jobs[i].fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) {
        int e = errno, fd = b->jobs[i].fd;
        for (int m = 0; m < b->nfds; m++) close(b->fds[m]);
        free(orig);
        bg_free(b);
        char msg[160];
        snprintf(msg, sizeof msg, "readInBackground: dup(%d) failed: %s", fd, strerror(e));
        napi_throw_error(env, "io_error", msg);
        return NULL;
      }
      orig[k] = b->jobs[i].fd;
      b->fds[k] = copy;
      b->nfds++;
    }
    b->jobs[i].fd = b->fds[k];
  }
  free(orig);
  b->piece_job = malloc((npieces ? npieces : 1) * sizeof(size_t));
  b->piece_off = malloc((npieces ? npieces : 1) * sizeof(size_t));
  if (!b->piece_job || !b->piece_off) {
    for (int m = 0; m < b->nfds; m++) close(b->fds[m]);
    bg_free(b);
    napi_throw_error(env, NULL, "readInBackground: out of memory");
    return NULL;
  }
  for (size_t i = 0, k = 0; i < njobs; i++) {
    for (size_t off = 0; off < b->jobs[i].bytes; off += BG_PIECE, k++) {
      b->piece_job[k] = i;
      b->piece_off[k] = off;
    }
  }
  b->npieces = npieces;
  napi_value handle;
  if (napi_create_external(env, b, bg_finalize, NULL, &handle) != napi_ok) {
    for (int m = 0; m < b->nfds; m++) close(b->fds[m]);
    bg_free(b);
    napi_throw_error(env, NULL, "readInBackground: cannot make a handle");
    return NULL;
  }
  b->env = env;
  b->hooked = napi_add_env_cleanup_hook(env, bg_cleanup_hook, b) == napi_ok;
  b->joined = 0;
  clock_gettime(CLOCK_MONOTONIC, &b->start);
  atomic_store(&b->running, BG_THREADS);
  int inline_runs = 0;
  for (int i = 0; i < BG_THREADS; i++) {
    if (pthread_create(&b->threads[b->nthreads], NULL, bg_worker, b) == 0) b->nthreads++;
    else inline_runs++;
  }
  for (int i = 0; i < inline_runs; i++) bg_worker(b); /* no thread to be had: read here */
  return handle;
}

static napi_value BackgroundDone(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct bg_batch *b = argc >= 1 ? bg_handle(env, argv[0]) : NULL;
  if (!b) {
    napi_throw_type_error(env, NULL, "backgroundDone(handle from readInBackground)");
    return NULL;
  }
  int64_t ns = atomic_load(&b->elapsed_ns);
  napi_value out;
  napi_create_double(env, ns < 0 ? -1 : (double)ns / 1e9, &out);
  return out;
}

static napi_value BackgroundJoin(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool cancel = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct bg_batch *b = argc >= 1 ? bg_handle(env, argv[0]) : NULL;
  if (!b || (argc >= 2 && napi_get_value_bool(env, argv[1], &cancel) != napi_ok)) {
    napi_throw_type_error(env, NULL, "backgroundJoin(handle from readInBackground, cancel: boolean)");
    return NULL;
  }
  bg_unhook(b);
  bg_join(b, cancel);
  napi_value out, v;
  if (cancel) {
    napi_get_null(env, &out);
    return out;
  }
  /* The first failed job in job order: a read error before a NaN/Inf, as readF32 reports them. */
  for (size_t i = 0; i < b->njobs; i++) {
    int err = atomic_load(&b->jobs[i].err);
    int64_t at = atomic_load(&b->jobs[i].bad);
    if (!err && at == INT64_MAX) continue;
    napi_create_object(env, &out);
    napi_create_uint32(env, (uint32_t)i, &v);
    napi_set_named_property(env, out, "job", v);
    const char *code = err < 0 ? "truncated" : err ? "io_error" : "non_finite";
    napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, out, "code", v);
    if (err > 0) {
      napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &v);
      napi_set_named_property(env, out, "reason", v);
    }
    if (!err) {
      napi_create_double(env, (double)at, &v);
      napi_set_named_property(env, out, "element", v);
    }
    return out;
  }
  napi_get_null(env, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"dup", NULL, Dup, NULL, NULL, NULL, napi_default, NULL},
    {"dup2", NULL, Dup2, NULL, NULL, NULL, napi_default, NULL},
    {"pageAlignedBuffer", NULL, PageAlignedBuffer, NULL, NULL, NULL, napi_default, NULL},
    {"readF32", NULL, ReadF32, NULL, NULL, NULL, napi_default, NULL},
    {"readInBackground", NULL, ReadInBackground, NULL, NULL, NULL, napi_default, NULL},
    {"backgroundDone", NULL, BackgroundDone, NULL, NULL, NULL, napi_default, NULL},
    {"backgroundJoin", NULL, BackgroundJoin, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
