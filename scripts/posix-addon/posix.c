/* dup() and dup2() for Node (which has neither): lets the tensorflow backend point file
 * descriptor 2 at /dev/null while TensorFlow loads and give the original back after, whatever
 * stderr is (a terminal, a pipe, a file or a socket). Built by `make native` (scripts/native.sh)
 * into node_modules/e5-tfjs-fd; engine/backends/tensorflow/quiet.ts uses it when present. */
#include <node_api.h>
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

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"dup", NULL, Dup, NULL, NULL, NULL, napi_default, NULL},
    {"dup2", NULL, Dup2, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}
