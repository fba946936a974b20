# bash completion for the slabmq CLI (installed to share/bash-completion/completions/slabmq).
# Commands, their options, and queue names from `slabmq queues` for commands that take one.

_slabmq_queues()
{
    local srv=()
    local i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case ${COMP_WORDS[i]} in
        -s | --server | --credentials | -t | --timeout | --tls-ca | --tls-cert | --tls-key | \
            --tls-server-name)
            srv+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}")
            ;;
        --tls | --tls-insecure)
            srv+=("${COMP_WORDS[i]}")
            ;;
        esac
    done
    slabmq "${srv[@]}" --timeout 1000 queues 2>/dev/null | awk 'NR > 1 || $1 != "NAME" { print $1 }'
}

_slabmq()
{
    local cur prev cmd i
    local commands="queues stats publish consume subscribe peek dlq move why purge pause resume
        delete declare memory ping top help"
    local global="-s --server --credentials -t --timeout -j --json -h --help -V --version
        --tls --tls-ca --tls-cert --tls-key --tls-server-name --tls-insecure"
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    case $prev in
    -s | --server | -t | --timeout | -n | --count | -w | --wait | --skip | --credit | \
        --tls-server-name | \
        --delay | --at | --ttl | --priority | --id | --visibility | --max-messages | \
        --max-length | --max-bytes | --backoff | --backoff-max | --max-deliveries | \
        --dedup-window | --interval)
        return
        ;;
    --credentials | --tls-ca | --tls-cert | --tls-key)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --overflow)
        COMPREPLY=($(compgen -W "reject drop-oldest dead-letter" -- "$cur"))
        return
        ;;
    --durable)
        COMPREPLY=($(compgen -W "yes no" -- "$cur"))
        return
        ;;
    --confirm)
        COMPREPLY=($(compgen -W "memory written synced" -- "$cur"))
        return
        ;;
    esac

    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -s | --server | --credentials | -t | --timeout | --tls-ca | --tls-cert | --tls-key | \
            --tls-server-name) ((i++)) ;;
        -*) ;;
        *)
            cmd=${COMP_WORDS[i]}
            break
            ;;
        esac
    done

    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=""
    case $cmd in
    publish) opts="--delay --at --ttl --priority --id --confirm" ;;
    consume) opts="-n --count -w --wait --confirmed-ack" ;;
    subscribe) opts="--credit -n --count -w --wait --confirmed-ack" ;;
    peek | dlq) opts="-n --count --skip" ;;
    move) opts="-n --count" ;;
    top) opts="--interval -n --count" ;;
    declare)
        opts="--visibility --max-messages --max-length --max-bytes --overflow --backoff
            --backoff-max --max-deliveries --dead-letter --ttl --dedup-window --durable --confirm"
        ;;
    help)
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
        return
    fi
    case $cmd in
    stats | publish | consume | subscribe | peek | dlq | move | why | purge | pause | resume | \
        delete | declare)
        COMPREPLY=($(compgen -W "$(_slabmq_queues)" -- "$cur"))
        ;;
    esac
}
complete -F _slabmq slabmq
