#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Translations: po/POTFILES.in names every source file with a translatable
# string; po/de.po translates every message of the current sources (no
# fuzzy, none missing); and agentctl speaks German under LANGUAGE=de.
# The last part runs tests/agentctl-localedir: agentctl's sources built with
# LOCALEDIR = <builddir>/tests/locale, where this test compiles po/de.po,
# so that nothing needs installing.  Prints TAP.
set -u
top=$(cd "${G_TEST_SRCDIR:-$(dirname "$0")}/.." && pwd)
build=${AB_TEST_BUILDDIR:-$(pwd)}
n=0
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ab-i18n.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
check() {
    description=$1
    shift
    if "$@"; then ok "$description"; else not_ok "$description"; fi
}

# --- POTFILES.in ---------------------------------------------------------------
marked=$(cd "$top" && grep -lE '(^|[^A-Za-z0-9_])(N?_|C_|NC_) ?\(' src/*.c |
    grep -v '^src/demo-agent[a-z-]*\.c$')
listed=$(grep -v '^#' "$top/po/POTFILES.in" | grep .)
for f in $marked; do
    check "po/POTFILES.in lists $f" grep -qx "$f" "$top/po/POTFILES.in"
done
for f in $listed; do
    check "$f of po/POTFILES.in exists" test -f "$top/$f"
done

# --- every language is complete --------------------------------------------
if command -v xgettext >/dev/null && command -v msgmerge >/dev/null; then
    options=$(sed -n 's/^XGETTEXT_OPTIONS *= *//p' "$top/po/Makevars")
    # shellcheck disable=SC2086
    (cd "$top" && xgettext --default-domain=agentbroker $options \
        --files-from=po/POTFILES.in -o "$tmp/current.pot")
    for lang in $(grep -v '^#' "$top/po/LINGUAS"); do
        msgmerge --quiet -o "$tmp/$lang.po" "$top/po/$lang.po" "$tmp/current.pot"
        stats=$(msgfmt --check --statistics -o /dev/null "$tmp/$lang.po" 2>&1)
        echo "# $lang: $stats"
        case $stats in
        *fuzzy* | *untranslated*) not_ok "po/$lang.po translates every message of the sources" ;;
        *" translated message"*) ok "po/$lang.po translates every message of the sources" ;;
        *) not_ok "po/$lang.po translates every message of the sources" ;;
        esac
    done
else
    echo "# xgettext or msgmerge missing: completeness not checked"
fi

# --- agentctl in German ------------------------------------------------------
ctl=$build/tests/agentctl-localedir
if [ ! -x "$ctl" ]; then
    not_ok "tests/agentctl-localedir is built"
    echo "1..$n"
    exit 1
fi
mkdir -p "$build/tests/locale/de/LC_MESSAGES"
check "po/de.po compiles" \
    msgfmt --check -o "$build/tests/locale/de/LC_MESSAGES/agentbroker.mo" "$top/po/de.po"

# glibc ignores LANGUAGE in the "C" locale only; C.UTF-8 is always there.
# With de_DE.UTF-8 generated (locales), the usual LANG=de_DE.UTF-8 is tried too.
run_de() {
    env -u LC_ALL -u LC_MESSAGES LANGUAGE=de LANG=C.UTF-8 "$@"
}
help=$(run_de "$ctl" --help 2>&1)
check "LANGUAGE=de agentctl --help prints the German summary" \
    grep -q 'agentbroker steuern, den Session-Broker' <<EOF2
$help
EOF2
check "LANGUAGE=de agentctl --help prints German option help" \
    grep -q 'Keine Spaltenköpfe und keine Fußzeile ausgeben' <<EOF2
$help
EOF2
check "LANGUAGE=de agentctl --help lists the verbs in German" \
    grep -q '^Befehle:' <<EOF2
$help
EOF2
error=$(run_de "$ctl" frobnicate 2>&1)
check "LANGUAGE=de agentctl frobnicate fails in German" \
    test "$error" = "agentctl: unbekannter Befehl „frobnicate“; siehe „agentctl --help“"
english=$(env -u LANGUAGE -u LC_MESSAGES LC_ALL=C.UTF-8 "$ctl" frobnicate 2>&1)
check "without LANGUAGE the message stays English" \
    test "$english" = "agentctl: unknown verb 'frobnicate'; try 'agentctl --help'"
if locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\{0,1\}8'; then
    error=$(env -u LC_ALL -u LANGUAGE LANG=de_DE.UTF-8 "$ctl" frobnicate 2>&1)
    check "LANG=de_DE.UTF-8 agentctl frobnicate fails in German" \
        test "$error" = "agentctl: unbekannter Befehl „frobnicate“; siehe „agentctl --help“"
else
    echo "# locale de_DE.UTF-8 not generated: LANG=de_DE.UTF-8 not tried"
fi

echo "1..$n"
exit "$failed"
