docker_daemon {
  settings = {
    "default-address-pools" = [
      { base = "172.30.0.0/16", size = 24 },
    ]
    "features" = { buildkit = true, "containerd-snapshotter" = false }
    "proxies"  = { "http-proxy" = "http://proxy.example:3128", "no-proxy" = "localhost,127.0.0.0/8" }
    "max-concurrent-downloads" = 6
  }
}
