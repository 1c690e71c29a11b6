{
  "targets": [
    {
      "target_name": "atoll_native",
      "sources": ["native/atoll_native.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
      "cflags!": ["-O3"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"]
    }
  ]
}
