agent {
  interval = "5 minutes"
}

docker_deamon {
  userns_remap = "default"
}

subordinate_ids "Dock Remap" {
  count = -5
}

service "docker.service" {
  state      = "runing"
  restart_on = [docker_daemon]
  timeout    = "90"
}

firewall {
  network "bridge" {
    egress_allow {
      proto = "tpc"
      ports = [80, 70000]
      to    = ["10.0.0.1/8", "not-an-ip"]
    }
  }
}

firewall {
}
