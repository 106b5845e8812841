"""How the page looks and reads: screenshots at desktop and phone widths (saved to
/tmp/medview-screens/ for a person to look at), no sideways scrolling at 375 px, WCAG AA text
contrast in light and dark mode, and reduced motion.
"""

from __future__ import annotations

from browser.fixtures import driver, web_server  # noqa: F401  (pytest fixtures)
from browser.support import ChatPage, fresh_user, set_viewport

# Every visible element with its own text: its colour against the background it really sits
# on (ancestor backgrounds composited), and the WCAG contrast ratio it must meet.
CONTRAST_PROBLEMS = """
const parse = (c) => {
  const m = c.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
};
const over = (top, under) => ({
  r: top.r * top.a + under.r * (1 - top.a),
  g: top.g * top.a + under.g * (1 - top.a),
  b: top.b * top.a + under.b * (1 - top.a), a: 1,
});
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const background = (el) => {
  const layers = [];
  for (let n = el; n; n = n.parentElement) {
    const bg = parse(getComputedStyle(n).backgroundColor);
    if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
  }
  let result = {r: 255, g: 255, b: 255, a: 1};
  for (const layer of layers.reverse()) result = over(layer, result);
  return result;
};
const problems = [];
for (const el of document.querySelectorAll('body *')) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  if (box.width < 2 || box.height < 2 || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
  if (el.closest('.visually-hidden') || el.disabled) continue;
  const bg = background(el);
  const fg = over(parse(style.color), bg);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  const needed = large ? 3 : 4.5;
  if (ratio < needed) problems.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)} < ${needed}`);
}
return problems;
"""

OVERFLOW = """
const width = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('body *')].filter((el) => {
  if (el.closest('[hidden]') || el.closest('.visually-hidden') || el.closest('.sidebar')) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.right > width + 1;
}).map((el) => el.tagName.toLowerCase() + '.' + el.className);
return {scrollWidth: document.documentElement.scrollWidth, width, wide};
"""


def _color_scheme(driver, scheme: str) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def _rich_transcript(page: ChatPage) -> None:
    """A conversation with most things the page can show."""
    page.type_and_send(
        "[[say:**Sleep tips** that often help:\n\n- Keep a *regular* bedtime\n- Avoid screens an hour before bed\n\n"
        "See [sleep hygiene](https://www.cdc.gov/sleep/) or call `988` if you feel low.]] [[delay:0]]"
    )
    page.wait_status("complete", index=0)
    page.type_and_send("I take warfarin. Can I take ibuprofen for my back? [[delay:0]]")
    page.wait_status("complete", index=1)
    page.type_and_send("Will this one finish? [[fail:after:4]] [[delay:0]]")
    page.wait_status("failed", index=2)
    page.type_and_send("I have crushing chest pain and I can't breathe [[delay:0]]")
    page.wait_status("complete", index=3)


def test_browser_screenshots_at_desktop_and_phone_width(driver, web_server):
    page = ChatPage(driver, web_server.http_url)

    # The sign-in screen on a phone.
    set_viewport(driver, 375, 812, mobile=True)
    page.open()
    page.wait.until(lambda d: d.find_element("id", "dev-user").is_displayed(), "no sign-in form")
    page.screenshot("phone-signin.png")
    assert driver.execute_script(OVERFLOW)["scrollWidth"] <= 375

    # Desktop, light.
    set_viewport(driver, 1280, 800)
    page.sign_in(fresh_user("screens"))
    _rich_transcript(page)
    at_end = "const t = document.getElementById('transcript'); return t.scrollHeight - t.scrollTop - t.clientHeight"
    assert driver.execute_script(at_end) < 5, "the transcript should follow the newest answer"
    page.screenshot("desktop.png")
    driver.execute_script("document.getElementById('transcript').scrollTop = 0")
    page.screenshot("desktop-top.png")

    # Desktop, dark.
    _color_scheme(driver, "dark")
    page.screenshot("desktop-dark.png")
    _color_scheme(driver, "light")

    # Phone: the transcript, the conversation list, the delete confirmation.
    set_viewport(driver, 375, 812, mobile=True)
    driver.execute_script("const t = document.getElementById('transcript'); t.scrollTop = t.scrollHeight")
    page.screenshot("phone.png")
    layout = driver.execute_script(OVERFLOW)
    assert layout["scrollWidth"] <= 375 and not layout["wide"], layout
    # Only the transcript scrolls: the page itself must not (hidden headings once made it taller).
    assert driver.execute_script("return document.documentElement.scrollHeight - innerHeight") <= 0
    send = driver.find_element("id", "send")
    assert send.is_displayed() and send.rect["x"] + send.rect["width"] <= 375
    banner = driver.find_element("css selector", "#turns [role=alert]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", banner)
    page.screenshot("phone-emergency.png")

    toggle = driver.find_element("id", "sidebar-toggle")
    assert toggle.is_displayed(), "the conversation list needs a toggle on phones"
    toggle.click()
    page.wait.until(lambda d: d.find_element("id", "sidebar").is_displayed(), "the conversation list did not open")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.screenshot("phone-conversations.png")
    page.click(".conversation-delete")
    page.wait.until(lambda d: d.find_element("id", "confirm-delete").is_displayed(), "no confirmation dialog")
    page.screenshot("phone-delete-dialog.png")
    driver.find_element("css selector", "#confirm-delete button[value=cancel]").click()
    page.wait.until(lambda d: not d.find_element("id", "confirm-delete").is_displayed(), "the dialog stayed open")
    driver.find_element("id", "sidebar-close").click()
    page.wait.until(lambda d: not d.find_element("id", "sidebar").is_displayed(), "the conversation list did not close")
    assert toggle.get_attribute("aria-expanded") == "false"

    # Phone, offline: the status pill and the note above the message box.
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    )
    driver.execute_script("window.__medview.debugDropSocket()")
    page.wait_state("offline")
    page.type_and_send("Typed while offline")
    page.wait_answers(5)
    page.screenshot("phone-offline.png")
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    )
    page.wait_status("complete", index=4)


def test_browser_text_contrast_meets_wcag_aa_in_light_and_dark(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.wait.until(lambda d: d.find_element("id", "dev-user").is_displayed(), "no sign-in form")
    for scheme in ("light", "dark"):
        _color_scheme(driver, scheme)
        assert driver.execute_script(CONTRAST_PROBLEMS) == [], f"sign-in, {scheme}"
    page.sign_in(fresh_user("contrast"))
    _rich_transcript(page)
    driver.find_element("css selector", "#turns [data-role=user]")  # the transcript is there
    for scheme in ("light", "dark"):
        _color_scheme(driver, scheme)
        problems = driver.execute_script(CONTRAST_PROBLEMS)
        assert problems == [], f"{scheme} mode:\n" + "\n".join(problems)


def test_browser_respects_reduced_motion(driver, web_server):
    page = ChatPage(driver, web_server.http_url)
    page.open()
    page.sign_in(fresh_user("motion"))
    # A pending answer shows animated typing dots, unless the patient asked for less motion.
    page.type_and_send("Slow one [[delay:400]]")
    dot = page.answer().find_element("css selector", ".typing-dot")
    animation = lambda: driver.execute_script("return getComputedStyle(arguments[0]).animationName", dot)  # noqa: E731
    assert animation() != "none"
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    assert animation() == "none"
