# 11-second-apply-noop: on a converged host, plan and apply say there is
# nothing to do (exit 0), rewrite no file and restart nothing.

converge
need "docker.service is active" systemctl is-active --quiet docker.service

files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
inv0=$(invocation_id)
sums0=$(checksums "${files[@]}")
inodes0=$(stat -c '%n %i %Y' "${files[@]}")
starts=$(docker_starts_mark)

expect_exit 0 dw plan
expect_exit 0 dw apply
expect_exit 0 dw apply

expect_eq "$(invocation_id)" "$inv0" "docker.service InvocationID unchanged"
expect_eq "$(docker_starts_since "$starts")" 0 "docker.service not started again"
expect_eq "$(checksums "${files[@]}")" "$sums0" "daemon.json, subuid and subgid unchanged"
expect_eq "$(stat -c '%n %i %Y' "${files[@]}")" "$inodes0" "no file rewritten (inode and mtime unchanged)"
