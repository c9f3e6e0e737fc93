# fleettop probe, protocol v1. Read by `sh -s -- FIRST` from stdin, so nothing
# user-supplied is ever part of a command line. FIRST=1 (first contact): sample
# the CPU and network counters twice, a moment apart, so that the very first CPU %
# and network rates are real. Only shell builtins and /proc, plus df under a
# timeout (a hung NFS mount must not hang the probe). External commands get
# </dev/null: stdin is this script.
LC_ALL=C
export LC_ALL
first_contact=${1:-0}

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

printf '%s\n' '@@FLEETTOP-BEGIN v1@@'
if [ "$first_contact" = 1 ]; then
    counters first-
    sleep 0.25 </dev/null 2>/dev/null || sleep 1 </dev/null
fi
counters ''
printf '@loadavg\n'
emit /proc/loadavg
set -- /proc/[0-9]*
printf '@procs\n%s\n' "$#"
printf '@meminfo\n'
while IFS= read -r line; do
    case $line in
        MemTotal:*|MemFree:*|MemAvailable:*|Buffers:*|Cached:*|SwapTotal:*|SwapFree:*) printf '%s\n' "$line" ;;
    esac
done < /proc/meminfo
printf '@mounts\n'
emit /proc/mounts
printf '@df\n'
if command -v timeout >/dev/null 2>&1; then
    timeout 5 df -Pk </dev/null 2>/dev/null
else
    df -Pk </dev/null 2>/dev/null
fi
printf '%s\n' '@@FLEETTOP-END@@'
