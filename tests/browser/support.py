"""Waiting and acting in browser tests, robust to Dash re-rendering the page.

Dash replaces DOM nodes whenever a callback redraws a component - and every page here
redraws on its own clock (the ward every second, the alert inbox every 5 s, the patient
page every 15 s), besides after each user action. An element found a moment ago can be
gone ("stale") when it is read or clicked. So every browser test waits, reads and clicks
through these helpers, which look the element up again and retry until the timeout
instead of failing on the first stale or not-yet-drawn element; the assertions stay the
caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
Locator = tuple[str, str]

# A re-render between finding an element and reading it, or a component not drawn yet:
# both mean "not yet", never "failed".
RETRIED = (StaleElementReferenceException, NoSuchElementException)


def wait(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 30,
         poll: float = 0.2) -> T:
    """``condition``'s first truthy result, polled every ``poll`` s; a stale or missing
    element inside ``condition`` is retried. Raises TimeoutException after ``timeout``."""
    return WebDriverWait(driver, timeout, poll_frequency=poll,
                         ignored_exceptions=RETRIED).until(condition)


def wait_text(driver: WebDriver, locator: Locator, predicate: Callable[[str], bool] = bool,
              timeout: float = 30) -> str:
    """The element's visible text, read inside the wait, once ``predicate`` accepts it.

    Use this instead of ``find_element(...).text`` after a wait: the text returned is the
    one that satisfied the wait, not a second read of a node that may be stale by now."""
    def read(d: WebDriver) -> tuple[str] | None:
        text = d.find_element(*locator).text
        return (text,) if predicate(text) else None  # a tuple: "" can be accepted too

    return wait(driver, read, timeout)[0]


def wait_texts(driver: WebDriver, css: str, predicate: Callable[[list[str]], bool] = bool,
               timeout: float = 30) -> list[str]:
    """The visible texts of all elements matching ``css``, all read in one attempt (a
    re-render in the middle starts the attempt again), once ``predicate`` accepts them."""
    def read(d: WebDriver) -> tuple[list[str]] | None:
        texts = [e.text for e in d.find_elements("css selector", css)]
        return (texts,) if predicate(texts) else None  # a tuple: [] can be accepted too

    return wait(driver, read, timeout)[0]


def open_dropdown(driver: WebDriver, dropdown_id: str, timeout: float = 30,
                  reclick_after: float = 3.0) -> None:
    """Open a dcc.Dropdown (Dash 4: a popover) and wait until it is open. A click that a
    re-render swallowed (the options refreshed by a callback just then: the click lands
    on the element being replaced) is made again after ``reclick_after`` seconds."""
    def expanded(d: WebDriver) -> bool:
        return d.find_element(By.ID, dropdown_id).get_attribute("aria-expanded") == "true"

    deadline = time.monotonic() + timeout
    while True:
        click(driver, (By.ID, dropdown_id), timeout=max(0.1, deadline - time.monotonic()))
        try:
            wait(driver, expanded, timeout=min(reclick_after,
                                               max(0.1, deadline - time.monotonic())))
            return
        except TimeoutException:
            if time.monotonic() >= deadline:
                raise


def wait_dropdown_closed(driver: WebDriver, dropdown_id: str) -> None:
    """Wait until a dcc.Dropdown's popover has closed and released the page: until then
    it swallows the next click."""
    wait(driver, lambda d: d.find_element(By.ID, dropdown_id).get_attribute(
        "aria-expanded") == "false"
         and not d.find_elements(By.CSS_SELECTOR, "[data-radix-focus-guard]"))


def pick_option(driver: WebDriver, dropdown_id: str, text: str,
                choose: Callable[[list], object | None]) -> None:
    """Open a dcc.Dropdown, type ``text`` into its search box, click the option
    ``choose`` returns from the listed ones (None: not there yet; a callback may still be
    filling them), and wait until the popover has closed. Clicking, not Enter: Enter while
    the filter is still narrowing the options chose nothing once under load, and with a
    value already chosen it may land on that one (listed first) and clear it."""
    open_dropdown(driver, dropdown_id)
    driver.switch_to.active_element.send_keys(text)
    wait(driver, lambda d: choose(
        d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"))).click()
    wait_dropdown_closed(driver, dropdown_id)


def click(driver: WebDriver, locator: Locator, timeout: float = 30,
          scroll: bool = False) -> None:
    """Click the element once it is displayed and enabled, looking it up again if a
    re-render replaced it in between. ``scroll`` centres it first (a sticky bar could
    otherwise cover it)."""
    def attempt(d: WebDriver) -> bool:
        element = d.find_element(*locator)
        if scroll:
            d.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    wait(driver, attempt, timeout)


def type_into(driver: WebDriver, locator: Locator, text: str, timeout: float = 30) -> None:
    """Replace an input's value with ``text`` and wait until the input holds it (a
    callback redrawing the input in between would otherwise lose the keystrokes)."""
    def attempt(d: WebDriver) -> bool:
        box = d.find_element(*locator)
        if box.get_attribute("value") != text:
            box.send_keys(Keys.CONTROL, "a")  # (clear() does not reach React's state)
            box.send_keys(Keys.DELETE)
            box.send_keys(text)
        return d.find_element(*locator).get_attribute("value") == text

    wait(driver, attempt, timeout)


_AWAIT_IDLE = """
// Resolves true at the first moment Dash has no callback requested, queued or running
// (dash.testing reads the same store), false after arguments[0] ms. A page that redraws
// on its own clock (the ward asks every 500 ms) is rarely idle when polled from outside
// on a loaded machine: listening to the store catches the idle moment between two
// callbacks instead of hoping a poll lands on it.
const [limitMs, done] = [arguments[0], arguments[arguments.length - 1]];
const idle = () => {
  const s = window.store && window.store.getState();
  if (!s) { return false; }
  const cbs = Object.assign({}, s.callbacks);
  delete cbs.stored; delete cbs.completed;
  return [].concat(...Object.values(cbs)).length === 0
    && !document.querySelector('[data-dash-is-loading="true"]');
};
if (idle()) { done(true); return; }
if (!window.store) { setTimeout(() => done(false), Math.min(limitMs, 200)); return; }
let unsubscribe = () => {};
const timer = setTimeout(() => { unsubscribe(); done(false); }, limitMs);
unsubscribe = window.store.subscribe(() => {
  if (idle()) { clearTimeout(timer); unsubscribe(); done(true); }
});
"""

_BUSY = """
// What keeps the page busy, for the failure message
const s = window.store && window.store.getState();
if (!s) { return 'no Dash store'; }
const out = {};
for (const [k, v] of Object.entries(s.callbacks)) {
  if (k === 'stored' || k === 'completed') { continue; }
  out[k] = v.map(cb => cb.callback && cb.callback.output);
}
out.loading = Array.from(document.querySelectorAll('[data-dash-is-loading="true"]'), e => e.id);
return JSON.stringify(out);
"""

_FREEZE = """
// Disable every dcc.Interval of the page's layout through Dash itself (set_props), so
// the renderer stops asking for new data.
const s = window.store && window.store.getState();
if (!s) { return []; }
const ids = [];
const walk = (n) => {
  if (!n || typeof n !== 'object') { return; }
  if (Array.isArray(n)) { n.forEach(walk); return; }
  if (n.type === 'Interval' && n.props && n.props.id) { ids.push(n.props.id); }
  if (n.props) { Object.values(n.props).forEach(walk); }
};
walk(s.layout);
ids.forEach(id => window.dash_clientside.set_props(id, {disabled: true}));
return ids;
"""

_TWO_FRAMES = """
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
"""


def settled(driver: WebDriver, timeout: float = 30, freeze: bool = False) -> None:
    """Wait until the page is idle and painted - what a screenshot needs, instead of a
    fixed sleep: a moment with no Dash callback in flight, web fonts loaded, then two
    animation frames (the second starts after the first's layout and paint).

    ``freeze`` first stops the page's own clocks (every ``dcc.Interval``): a 32-bed ward
    redraws every 500 ms, and a software-rendering headless Chromium on a loaded 2-core
    machine can take longer than that to draw it, so the page is never idle. Use it when
    the test has finished waiting for what the page should show."""
    # never shorten a longer script timeout a test has set for a busy page
    driver.timeouts.script = max(driver.timeouts.script, timeout + 5)
    if freeze:
        driver.execute_script(_FREEZE)
    try:
        wait(driver, lambda d: d.execute_async_script(_AWAIT_IDLE, 2_000), timeout, poll=0)
    except TimeoutException as exc:
        raise TimeoutException(f"no idle moment in {timeout} s: "
                               f"{driver.execute_script(_BUSY)}") from exc
    wait(driver, lambda d: d.execute_script("return document.fonts.status === 'loaded'"),
         timeout)
    driver.execute_async_script(_TWO_FRAMES)


def scrolled_to(driver: WebDriver, y: int, timeout: float = 10) -> None:
    """``window.scrollTo(0, y)`` and wait until the page is there (or as far as it goes)."""
    driver.execute_script("window.scrollTo(0, arguments[0]);", y)
    wait(driver, lambda d: d.execute_script(
        "const max = document.scrollingElement.scrollHeight - window.innerHeight;"
        "return Math.abs(window.scrollY - Math.max(0, Math.min(arguments[0], max))) < 1;", y),
        timeout)


def viewport_size(driver: WebDriver) -> tuple[int, int]:
    return tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))


def set_viewport(driver: WebDriver, width: int, height: int, timeout: float = 10) -> None:
    """Make the page's viewport (what a screenshot captures) exactly width x height:
    the window's own bars come on top of it, so the window is resized by the difference,
    and the wait ends when the page has the new size."""
    driver.set_window_size(width, height)
    inner = viewport_size(driver)
    if inner != (width, height):
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    wait(driver, lambda d: viewport_size(d) == (width, height), timeout)


_CLIPPED_DIGITS = r"""
// Every number on the ward's tiles, checked by the box of its digits' ink: the glyphs'
// ascent and descent above and below the baseline (canvas measureText in the element's
// own font), across the element's width. A number is clipped when that box leaves its
// tile, its cell (which hides overflow) or its row (the divider under a row is the
// row's bottom border), or when a sparkline, a label or an abnormal-value marker lies
// over it. Returns one line per problem, and the smallest ink height of a vital sign.
// Writes first, then reads (one layout for the whole screen, not one per number).
const NUMBERS = '.wt-num, .wt-map, .wt-news-num, .wt-bed, .wt-stale-age';
const canvas = document.createElement('canvas').getContext('2d');
const problems = [];
let smallest = Infinity;
const inside = (a, b, slack) => a.left >= b.left - slack && a.right <= b.right + slack
  && a.top >= b.top - slack && a.bottom <= b.bottom + slack;
const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom
  && b.top < a.bottom;
const content = (el) => {  // the box inside the element's borders
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return {left: r.left + parseFloat(s.borderLeftWidth),
          right: r.right - parseFloat(s.borderRightWidth),
          top: r.top + parseFloat(s.borderTopWidth),
          bottom: r.bottom - parseFloat(s.borderBottomWidth)};
};
const numbers = [];
for (const el of document.querySelectorAll('#ward-grid .wt ' + NUMBERS.split(', ').join(
    ', #ward-grid .wt '))) {
  const text = el.textContent.trim();
  if (!/\d/.test(text) || el.offsetParent === null) { continue; }
  const probe = document.createElement('span');  // where the baseline is
  probe.style.cssText = 'display:inline-block;width:0;height:0;vertical-align:baseline';
  el.appendChild(probe);
  numbers.push([el, text, probe]);
}
for (const [el, text, probe] of numbers) {
  const tile = el.closest('.wt');
  const bed = tile.getAttribute('data-bed');
  const s = getComputedStyle(el);
  canvas.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
  const m = canvas.measureText(text);
  const baseline = probe.getBoundingClientRect().top;
  const r = el.getBoundingClientRect();
  const ink = {left: r.left + parseFloat(s.paddingLeft),
               right: r.right - parseFloat(s.paddingRight),
               top: baseline - m.actualBoundingBoxAscent,
               bottom: baseline + m.actualBoundingBoxDescent};
  const what = `bed ${bed} ${el.className.split(' ')[0]} "${text}"`;
  if (el.classList.contains('wt-num')) {
    smallest = Math.min(smallest, ink.bottom - ink.top);
  }
  if (!inside(ink, content(tile), 0.5)) { problems.push(`${what}: outside its tile`); }
  const cell = el.closest('.wt-cell');
  if (cell && !inside(ink, cell.getBoundingClientRect(), 0.5)) {
    problems.push(`${what}: cut by its cell`);
  }
  const row = el.closest('.wt-row, .wt-head');
  if (row && !inside(ink, content(row), 0.5)) {
    problems.push(`${what}: crosses its row's divider`);
  }
  for (const cover of tile.querySelectorAll('.wt-spark, .wt-lab, .wt-unit, .wt-abn')) {
    const box = cover.getBoundingClientRect();
    if (box.width > 0 && !cover.contains(el) && !el.contains(cover) && meets(ink, box)) {
      problems.push(`${what}: under ${cover.className.split(' ')[0]}`);
    }
  }
}
for (const [, , probe] of numbers) { probe.remove(); }
return [problems, smallest];
"""


def ward_digits(driver: WebDriver) -> tuple[list[str], float]:
    """(every number of the ward's tiles that is clipped or covered, the smallest ink
    height in px of a vital sign's digits); see ``_CLIPPED_DIGITS``."""
    problems, smallest = driver.execute_script(_CLIPPED_DIGITS)
    return problems, smallest
