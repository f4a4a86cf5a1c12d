# SPDX-License-Identifier: LGPL-2.1-or-later
# bash completion for qmachinectl(1): commands, the options of each
# command, and the names of machines and images, asked of the daemon that
# the words typed so far select (--session, --address, -H/--host).
#
# The tables below follow src/qmachinectl/main.c; test_completion.py checks
# them against `qmachinectl --help` and `qmachinectl COMMAND --help`.

__qmachinectl_commands='list status show create clone remove enable disable start launch stop kill
wait powerdown powerdown-all pause resume reset qmp command events wait-event monitor log
console console-output login expect send send-key exec shell copy-to copy-from images image-create image-check image-remove
migrate save restore version port help'

__qmachinectl_global_options='--help -h --session --address= --host= -H
--no-ask-password --version --output= -o --json --no-legend --no-pager --quiet -q'

# Options that take a value (as a separate word or after "=").
__qmachinectl_value_options='--address --host -H --timeout --after --hold
--machine --arg --wrapper --binary --console-device --console-index --nics
--qmp-timeout --uuid --incoming --description --cluster-size --backing --to
--dname --listen-address --bandwidth --downtime-limit --postcopy-after
--cancel-after --drain --mode --output -o --property -p'

__qmachinectl_output_modes='table json json-pretty value'

# The values of -p/--property: the Machine interface's properties, as in
# introspection/org.qmachine.QMachine1.Machine.xml (test_completion.py
# checks that the list is the file's).
__qmachinectl_properties='Name UUID State RunState Pid ExitCode CommandLine Config Owner
Persistent QemuVersion EventSequence KernelCrash MacAddresses LaunchTimestamp RuntimeDirectory
LogDirectory ConsoleBytes ForwardedPorts GuestAgentConnected'

# The options of each command, besides the global ones.
__qmachinectl_command_options() {
    case $1 in
        create) echo '--machine= --arg= --binary= --wrapper= --persistent --console
                      --console-device= --console-index= --nics= --qmp-timeout= --uuid=
                      --incoming= --description= --no-qmp' ;;
        stop) echo '--timeout= --force' ;;
        wait) echo '--timeout= --no-kill' ;;
        powerdown|powerdown-all|save) echo '--timeout=' ;;
        show) echo '--property= --value' ;;
        restore) echo '--paused --timeout=' ;;
        events) echo '--after=' ;;
        wait-event) echo '--after= --timeout=' ;;
        console|login) echo '--drain=' ;;
        expect) echo '--after= --timeout=' ;;
        send-key) echo '--hold=' ;;
        exec|shell) echo '--timeout=' ;;
        copy-to) echo '--mode=' ;;
        image-create) echo '--cluster-size= --backing=' ;;
        migrate) echo '--timeout= --offline --cancel-after= --to= --persistent
                       --undefine-source --dname= --listen-address= --bandwidth=
                       --downtime-limit= --auto-converge --postcopy --postcopy-after=' ;;
    esac
}

# What the first argument of a command names: machine, image, command or
# nothing to complete.
__qmachinectl_argument_kind() {
    case $1 in
        list|images|version|create|image-create|powerdown-all) ;;
        image-check|image-remove) echo image ;;
        help) echo command ;;
        *) echo machine ;;
    esac
}

# The bus options typed so far, for asking the same daemon.
__qmachinectl_bus_args() {
    local i w
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --session|--address=*|--host=*|-H?*) printf '%s\n' "$w" ;;
            --address|--host|-H)
                [[ -n ${words[i + 1]} ]] && printf '%s\n%s\n' "$w" "${words[i + 1]}" ;;
        esac
    done
}

# First column of a listing, without its header; nothing when the daemon
# cannot be asked (no password prompt, 5 seconds at most).
__qmachinectl_names() {
    local -a bus
    mapfile -t bus < <(__qmachinectl_bus_args)
    timeout 5 "${words[0]}" "${bus[@]}" --no-ask-password --no-pager --no-legend "$1" 2>/dev/null |
        awk '!($1 == "NAME" && ($2 == "STATE" || $2 == "FORMAT")) { print $1 }'
}

# COMPREPLY for the value $2 of option $1: a command for --binary, the
# modes of --output and --json, property names for --property (after the
# last comma of a list), else nothing to offer.
__qmachinectl_values() {
    case $1 in
        --binary) COMPREPLY=($(compgen -c -- "$2")) ;;
        --property|-p)
            local before=''
            [[ $2 == *,* ]] && before=${2%,*},
            COMPREPLY=($(compgen -P "$before" -W "$__qmachinectl_properties" -- "${2##*,}")) ;;
        --output|-o) COMPREPLY=($(compgen -W "$__qmachinectl_output_modes" -- "$2")) ;;
        --json) COMPREPLY=($(compgen -W 'pretty short off' -- "$2")) ;;
    esac
}

_qmachinectl() {
    local cur prev words cword
    local i w command='' nargs=0 choices

    # bash splits "--address=unix:path=..." at "=" and ":"; bash-completion
    # puts the words back together
    if declare -F _get_comp_words_by_ref >/dev/null; then
        _get_comp_words_by_ref -n =: cur prev words cword
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${words[cword]}
        prev=${words[cword - 1]}
    fi
    COMPREPLY=()
    # The command and how many arguments precede the current word.
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ " $__qmachinectl_value_options " == *" $w "* ]]; then
            ((i++))
        elif [[ $w == -* ]]; then
            :
        elif [[ -z $command ]]; then
            command=$w
        else
            ((nargs++))
        fi
    done

    # The value after "=": bash splits "--output=js" into "--output" "=" "js";
    # bash-completion joins them again (-n =:). Readline replaces only the
    # part after "=", so the values are offered without the option.
    if [[ $cur == --*=* ]]; then
        __qmachinectl_values "${cur%%=*}" "${cur#*=}"
        return 0
    elif [[ $prev == = && $cword -ge 2 ]]; then
        __qmachinectl_values "${words[cword - 2]}" "$cur"
        return 0
    fi
    # The value of an option as the next word.
    if [[ " $__qmachinectl_value_options " == *" $prev "* ]]; then
        __qmachinectl_values "$prev" "$cur"
        return 0
    fi

    if [[ $cur == -* ]]; then
        choices="$__qmachinectl_global_options $(__qmachinectl_command_options "$command")"
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        # an option that ends in "=" waits for its value
        [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
        return 0
    fi

    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "$__qmachinectl_commands" -- "$cur"))
        return 0
    fi
    if ((nargs == 0)); then
        case $(__qmachinectl_argument_kind "$command") in
            machine) choices=$(__qmachinectl_names list) ;;
            image) choices=$(__qmachinectl_names images) ;;
            command) choices=$__qmachinectl_commands ;;
            *) choices='' ;;
        esac
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    fi
    return 0
}

complete -F _qmachinectl qmachinectl
