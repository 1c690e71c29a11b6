{
  "targets": [
    {
      "target_name": "atoll_native",
      "sources": ["native/atoll_native.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
      "cflags!": ["-O3"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"]
    },
    {
      "target_name": "atoll_spt",
      "sources": ["native/atoll_seccomp.c", "native/atoll_heap_limit.cc"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "cflags_c": ["-std=gnu11"],
      "cflags!": ["-O3"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"],
      "conditions": [
        ["'<!(echo \"#include <seccomp.h>\" | ${CC:-cc} -E -x c - >/dev/null 2>&1 && echo yes || echo no)'=='yes'", {
          "libraries": ["-lseccomp"]
        }, {
          "defines": ["ATOLL_NO_LIBSECCOMP"]
        }]
      ]
    }
  ]
}
