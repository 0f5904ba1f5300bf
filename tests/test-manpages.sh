#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages against the code: every agentctl verb of the verb table in
# src/agentctl.c is an item of agentctl(1) (and every verb there exists);
# every key the config loader accepts (the *_keys[] tables of
# src/ab-config-sections.c) is in agentbroker.yaml(5); the zsh completion
# offers every verb; every method, signal and property of the D-Bus
# XML and every error of src/error.c is in org.agentbroker.Broker1(5); and
# man(1) renders every page without a warning.  Prints TAP.
set -u
top=$(cd "${G_TEST_SRCDIR:-$(dirname "$0")}/.." && pwd)
man=$top/man
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }

# has_item PAGE REGEX-PREFIX WORD: WORD is the operand of a .B/.BI/.BR
# request in PAGE, optionally after REGEX-PREFIX (e.g. a section "pool.").
has_item() {
    grep -Eq "^\\.B[IR]? $2$3(\$| )" "$1"
}

# --- agentctl verbs --------------------------------------------------------
verbs=$(sed -n '/^static const AbCtlVerb verbs\[\] = {/,/^};/p' "$top/src/agentctl.c" |
    grep -o '{ *"[a-z][a-z-]*"' | sed 's/.*"\(.*\)"/\1/')
if [ -z "$verbs" ]; then
    not_ok "found the verb table in src/agentctl.c"
fi
for verb in $verbs; do
    if has_item "$man/agentctl.1" "" "$verb"; then
        ok "agentctl(1) documents verb $verb"
    else
        not_ok "agentctl(1) documents verb $verb"
    fi
done
# The reverse: every item of the VERBS section is a verb of the code.
documented=$(sed -n '/^\.SH VERBS/,/^\.SH /p' "$man/agentctl.1" |
    sed -n '/^\.TP/{n;p;}' | sed -n 's/^\.B[IR]\{0,1\} \([a-z][a-z-]*\).*/\1/p')
for verb in $documented; do
    if printf '%s\n' $verbs | grep -qx "$verb"; then
        ok "verb $verb of agentctl(1) exists in src/agentctl.c"
    else
        not_ok "verb $verb of agentctl(1) exists in src/agentctl.c"
    fi
done

# The zsh completion offers every verb too (its syntax checked when zsh is
# installed).
for verb in $verbs; do
    if grep -q "^ *'$verb:" "$top/data/_agentctl"; then
        ok "data/_agentctl completes verb $verb"
    else
        not_ok "data/_agentctl completes verb $verb"
    fi
done
if command -v zsh >/dev/null 2>&1; then
    if zsh -n "$top/data/_agentctl"; then ok "data/_agentctl parses"; else not_ok "data/_agentctl parses"; fi
fi

# --- configuration keys ----------------------------------------------------
# Each table NAME_keys[] lists the keys of one mapping; the top-level and
# per-agent keys are documented bare, the others as SECTION.KEY.
tables=$(grep -o 'static const char \*const [a-z_]*_keys\[\]' "$top/src/ab-config-sections.c" |
    sed 's/.* \([a-z_]*_keys\)\[\]/\1/')
if [ -z "$tables" ]; then
    not_ok "found the key tables in src/ab-config-sections.c"
fi
for table in $tables; do
    keys=$(awk -v t=" $table[] = {" '
        index($0, t) { on = 1; sub(/.*= \{/, "") }
        on { print; if (index($0, "};")) on = 0 }' "$top/src/ab-config-sections.c" |
        grep -o '"[a-z_]*"' | tr -d '"')
    case $table in
    top_keys | agent_keys) prefix="" ;;
    timeout_keys) prefix="timeouts\\." ;;
    *) prefix="${table%_keys}\\." ;;
    esac
    [ -n "$keys" ] || not_ok "table $table in src/ab-config-sections.c has keys"
    for key in $keys; do
        if has_item "$man/agentbroker.yaml.5" "$prefix" "$key"; then
            ok "agentbroker.yaml(5) documents $(echo "$prefix" | tr -d '\\')$key"
        else
            not_ok "agentbroker.yaml(5) documents $(echo "$prefix" | tr -d '\\')$key"
        fi
    done
done

# --- D-Bus members and errors -------------------------------------------------
members=$(grep -Eo '<(method|signal|property) name="[A-Za-z]+"' \
    "$top/dbus/org.agentbroker.Broker1.xml" | sed 's/.*name="\(.*\)"/\1/' | sort -u)
errors=$(grep -o '"org\.agentbroker\.Error\.[A-Za-z]*"' "$top/src/error.c" |
    sed 's/.*Error\.\(.*\)"/\1/')
[ -n "$members" ] || not_ok "found the members in the D-Bus XML"
[ -n "$errors" ] || not_ok "found the errors in src/error.c"
for member in $members $errors; do
    if has_item "$man/org.agentbroker.Broker1.5" "" "$member"; then
        ok "org.agentbroker.Broker1(5) documents $member"
    else
        not_ok "org.agentbroker.Broker1(5) documents $member"
    fi
done

# --- the pages render cleanly (what lintian checks) --------------------------
if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
    for page in "$man"/*.[158]; do
        warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
            man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
        if [ -z "$warnings" ]; then
            ok "$(basename "$page") renders without warnings"
        else
            not_ok "$(basename "$page") renders without warnings"
            printf '%s\n' "$warnings" | sed 's/^/# /'
        fi
    done
else
    echo "# man or groff missing: rendering not checked"
fi

# mandoc's linter, at its strictest level (Debian package mandoc).
if command -v mandoc >/dev/null 2>&1; then
    for page in "$man"/*.[158]; do
        lint=$(mandoc -Tlint -W style "$page" 2>&1)
        if [ -z "$lint" ]; then
            ok "$(basename "$page") is mandoc -Tlint clean"
        else
            not_ok "$(basename "$page") is mandoc -Tlint clean"
            printf '%s\n' "$lint" | sed 's/^/# /'
        fi
    done
elif [ -n "${AGENTBROKER_REQUIRE_ALL_TESTS:-}" ]; then
    not_ok "mandoc is installed (Debian package mandoc)"
else
    echo "# mandoc missing: the pages are not linted"
fi

echo "1..$n"
exit "$failed"
