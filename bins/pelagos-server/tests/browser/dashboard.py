"""Drive pelagos-server's dashboard (/ui) in Debian's chromium with
Playwright; run by the `peers_browser` test target (tests/browser/main.rs).

Usage: dashboard.py <server url> <screenshot path> <node to provision>
                    <node with a hostile console line> <hostile text>
       dashboard.py problems <server url> <screenshot path> <expected JSON>

Protocol with the test: prints `READY` once the page shows every demo node,
reads one line from stdin (the TaskID of the provision the test started
over REST), follows that task in the page until it is done, prints
`STAGES <json list>` and `OK`, and exits 0; any failure exits non-zero with
the reason on stderr. The browser only receives server-sent events; this
script reads the DOM.

`problems` mode: the page lists every node of a lab with disabled ones,
each disabled node with its problems, names and problems as text (one name
is markup); <expected JSON> is `{<node name>: [<problem substring>...]}`.
Prints `OK`.
"""

import json
import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Root needs --no-sandbox; the rest keeps chromium off the (closed) network.
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_NODES = 5


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def launch(p, profile):
    return p.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=ARGS,
        viewport={"width": 1500, "height": 900},
    )


def no_markup(page):
    if page.evaluate("document.querySelectorAll('main img, main script, main b').length"):
        fail("data became elements")
    if page.evaluate("window.__xss !== undefined"):
        fail("data ran as script")


def problems(url, shot, expected):
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = launch(p, profile)
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(url + "/ui")
        page.wait_for_selector("#conn[data-state=live]")
        page.wait_for_function(
            f"document.querySelectorAll('#nodes tr.node').length === {len(expected)}"
        )
        shown = page.eval_on_selector_all(
            "#nodes tr.node",
            """rows => Object.fromEntries(rows.map(r => [r.dataset.node, {
                name: r.querySelector('td.name').firstChild.textContent,
                disabled: r.classList.contains('disabled'),
                problems: [...r.querySelectorAll('ul.problems li')].map(li => li.textContent),
            }]))""",
        )
        for name, wanted in expected.items():
            got = shown.get(name)
            if got is None:
                fail(f"node {name!r} not shown: {list(shown)}")
            if got["name"] != name:
                fail(f"name shown as {got['name']!r}, not {name!r}")
            if got["disabled"] != bool(wanted) or len(got["problems"]) != len(wanted):
                fail(f"{name!r}: {got}, expected problems {wanted}")
            for text, want in zip(got["problems"], wanted):
                if want not in text:
                    fail(f"{name!r}: problem {text!r} lacks {want!r}")
        no_markup(page)
        page.screenshot(path=shot, full_page=True)
        ctx.close()
    print("OK", flush=True)


def main():
    if sys.argv[1] == "problems":
        problems(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
        return
    url, shot, node, hostile_node, hostile = sys.argv[1:6]
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = launch(p, profile)
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.set_default_timeout(30_000)
        page.goto(url + "/ui")

        # Every node of the demo lab, from the first snapshot.
        page.wait_for_selector("#conn[data-state=live]")
        page.wait_for_function(
            f"document.querySelectorAll('#nodes tr.node').length === {DEMO_NODES}"
        )
        names = page.eval_on_selector_all(
            "#nodes tr.node", "rows => rows.map(r => r.dataset.node)"
        )
        if node not in names or hostile_node not in names:
            fail(f"nodes shown: {names}")
        row = f'#nodes tr.node[data-node="{node}"]'
        if page.text_content(row + " td.power").strip() != "unknown":
            fail("an untouched node's power should read unknown")
        if not page.text_content(row + " td.bmc").strip():
            fail("no BMC address")

        # Hostile console text is shown as text, never as markup.
        hrow = f'#nodes tr.node[data-node="{hostile_node}"]'
        page.wait_for_function(
            "([sel, text]) => (document.querySelector(sel + ' td.console')"
            " || {}).textContent === text",
            arg=[hrow, hostile],
        )
        no_markup(page)

        print("READY", flush=True)
        task = sys.stdin.readline().strip()
        if not task:
            fail("no task id on stdin")
        trow = f'#tasks tr.task[data-task="{task}"]'
        page.wait_for_selector(trow)

        # Follow the task through its stages (the page is pushed; we read it).
        stages, saw_active, state = [], False, None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            snap = page.evaluate(
                """([trow, row, task]) => {
                    const t = document.querySelector(trow);
                    const n = document.querySelector(row + ' td.task');
                    return {
                      state: t && t.dataset.state,
                      stage: t && t.querySelector('.stage') && t.querySelector('.stage').textContent,
                      status: t && t.querySelector('.status').textContent,
                      active: !!n && n.dataset.task === task,
                    };
                }""",
                [trow, row, task],
            )
            state = snap["state"]
            if snap["active"]:
                saw_active = True
            if state == "running" and snap["stage"] and (not stages or stages[-1] != snap["stage"]):
                stages.append(snap["stage"])
            if state in ("done", "failed"):
                break
            time.sleep(0.05)
        if state != "done":
            fail(f"task {task} ended as {state}: {page.text_content(trow)}")
        if "200" not in page.text_content(trow + " .status"):
            fail("done without 200: " + page.text_content(trow + " .status"))
        if len(set(stages)) < 2:
            fail(f"saw too few stages: {stages}")
        if not saw_active:
            fail("the node row never showed the running task")

        # The node shows its console, its power, and no active task anymore.
        page.wait_for_function(
            "sel => document.querySelector(sel + ' td.power').textContent === 'on'", arg=row
        )
        page.wait_for_function(
            "sel => document.querySelector(sel + ' td.console').textContent.length > 0", arg=row
        )
        page.wait_for_function(
            "sel => !document.querySelector(sel + ' td.task').dataset.task", arg=row
        )
        page.click(row + " button.toggle-console")
        page.wait_for_function(
            "n => document.querySelector(`tr.detail[data-console-of=\"${n}\"] pre`)"
            ".textContent.split('\\n').length > 2",
            arg=node,
        )
        # The task's log, fetched on request.
        page.click(trow + " button.toggle-log")
        page.wait_for_function(
            "id => { const p = document.querySelector(`tr.detail[data-log-of=\"${id}\"] pre`);"
            " return p && p.textContent.includes(' | INFO | '); }",
            arg=task,
        )
        page.screenshot(path=shot, full_page=True)
        if errors:
            fail(f"page errors: {errors}")
        foreign = [u for u in requests if not u.startswith(url)]
        if foreign:
            fail(f"the page fetched from elsewhere: {foreign}")
        ctx.close()
    print("STAGES " + json.dumps(stages), flush=True)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
