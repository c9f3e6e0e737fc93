# fleettop probe, protocol v1. Read by `sh -s -- FIRST [serve]` from stdin, so
# nothing user-supplied is ever part of a command line. FIRST=1 (first contact):
# sample the CPU and network counters twice, a moment apart, so that the very first
# CPU % and network rates are real. Only shell builtins and /proc, plus df under a
# timeout (a hung NFS mount must not hang the probe). External commands get
# </dev/null: stdin is this script, then the requests.
#
# With "serve" the shell stays: after its first answer it reads one request line
# at a time ("0" or "1", as FIRST) and answers each, until EOF or another line. So
# a kept-open connection costs the server one session, not one per collection. A
# request must reach the shell only after the first answer: everything runs from
# the last line, so the shell has read the whole script, and nothing more, by then.
LC_ALL=C
export LC_ALL

emit() {
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
    done < "$1"
}

counters() {
    printf '@%suptime\n' "$1"
    emit /proc/uptime
    printf '@%sstat\n' "$1"
    while IFS= read -r line; do
        case $line in
            "cpu "*) printf '%s\n' "$line"; break ;;
        esac
    done < /proc/stat
    printf '@%snetdev\n' "$1"
    emit /proc/net/dev
}

answer() {
    printf '%s\n' '@@FLEETTOP-BEGIN v1@@'
    if [ "$1" = 1 ]; then
        counters first-
        sleep 0.25 </dev/null 2>/dev/null || sleep 1 </dev/null
    fi
    counters ''
    printf '@loadavg\n'
    emit /proc/loadavg
    set -- /proc/[0-9]*
    printf '@procs\n%s\n' "$#"
    printf '@meminfo\n'
    while IFS= read -r line; do  # SwapFree comes last of these: the rest is not read (a byte a read)
        case $line in
            MemTotal:*|MemFree:*|MemAvailable:*|Buffers:*|Cached:*|SwapTotal:*) printf '%s\n' "$line" ;;
            SwapFree:*) printf '%s\n' "$line"; break ;;
        esac
    done < /proc/meminfo
    printf '@mounts\n'
    local_only=1
    while read -r device mount fstype rest; do
        printf '%s %s %s %s\n' "$device" "$mount" "$fstype" "$rest"
        case $fstype in
            ext[234]|xfs|btrfs|vfat|exfat|ntfs|ntfs3|f2fs|jfs|zfs|bcachefs|tmpfs|devtmpfs|ramfs|proc|sysfs|\
            devpts|cgroup|cgroup2|securityfs|pstore|efivarfs|bpf|tracefs|debugfs|mqueue|hugetlbfs|configfs|\
            fusectl|rpc_pipefs|nsfs|overlay|squashfs|iso9660|erofs|selinuxfs|binfmt_misc|autofs) ;;
            *) local_only=0 ;;
        esac
    done < /proc/mounts
    printf '@df\n'
    # df's statfs can hang on a network (or FUSE) file system whose server is gone: then
    # it runs under timeout, which costs the host a process more; only local ones, not.
    # (GNU df does not statfs an autofs mount point; what it mounts is listed on its own.)
    if [ "$local_only" = 0 ] && command -v timeout >/dev/null 2>&1; then
        timeout 5 df -Pk </dev/null 2>/dev/null
    else
        df -Pk </dev/null 2>/dev/null
    fi
    printf '%s\n' '@@FLEETTOP-END@@'
}

main() {
    answer "$1"
    [ "$2" = serve ] || return 0
    while IFS= read -r request; do
        case $request in
            0|1) answer "$request" ;;
            *) return 0 ;;
        esac
    done
}

main "${1:-0}" "${2:-}"
