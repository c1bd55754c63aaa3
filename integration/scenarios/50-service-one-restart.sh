# 50-service-one-restart: daemon.json (log caps) and /etc/subuid (the
# dockremap range) drift together. plan shows one restart of docker.service
# and says why; apply puts both back with exactly one restart, verified,
# and leaves no restart owed; the next apply restarts nothing.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "daemon.json has max-size 10m" grep -q '"max-size": *"10m"' /etc/docker/daemon.json

set_json_string /etc/docker/daemon.json max-size 99m
sed -i '/^dockremap:/d' /etc/subuid
need "both edits took" bash -c 'grep -q "\"max-size\": *\"99m\"" /etc/docker/daemon.json && ! grep -q "^dockremap:" /etc/subuid'
inv0=$(invocation_id)

expect_exit 2 dw plan
expect_match "$OUT" "restart docker\.service: docker_daemon changed .*; subordinate_ids\.dockremap changed " \
	"plan shows one restart, owed to both changes"
expect_eq "$(grep -c 'restart docker.service' <<<"$OUT")" 1 "plan shows the restart once"
expect_eq "$(invocation_id)" "$inv0" "plan restarted nothing"

starts=$(docker_starts_mark)
t0=$(date +%s%N)
expect_exit 2 dw apply
note "apply (daemon.json, subuid, one verified restart) took $((($(date +%s%N) - t0) / 1000000)) ms"
expect_ne "$(invocation_id)" "$inv0" "docker.service was restarted (InvocationID changed)"
expect_eq "$(docker_starts_since "$starts")" 1 "docker.service started exactly once for both changes"
check "docker.service is active" systemctl is-active --quiet docker.service
check "the Engine API answers" docker version
check "no restart is owed after the verified restart" test ! -e /var/lib/dockward/restart-owed.json

inv1=$(invocation_id)
expect_exit 0 dw apply
expect_eq "$(invocation_id)" "$inv1" "a run that changes nothing restarts nothing"
