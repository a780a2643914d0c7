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
 * JavaScript memory as the tensor's own rather than copying it. (Asking for transparent huge
 * pages made a 1.34 GB load 4x slower here: the kernel compacts memory to find them;
 * MAP_POPULATE changed nothing measurable.) */
#include <node_api.h>
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
