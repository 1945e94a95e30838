"""WebKit (Safari's engine) as WebKitGTK: Debian's WebKitWebDriver and MiniBrowser driven by
selenium. MiniBrowser has no headless mode, so the engine runs its own Xvfb display; every page
is a new WebDriver session (a fresh, ephemeral profile). WebKitGTK gives a cross-origin isolated page
no SharedArrayBuffer, as in GNOME Web; launch(shared_memory=True) sets JSC's own option so that it
does, as Safari does."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess

from bitnet_wasm.bench.engines import Engine, EngineError, Page, missing

WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
SCRIPT_TIMEOUT_S = 600  # one generation on a large model in one evaluate
SESSION_START_TIMEOUT_S = 60  # a new session answers in seconds; seen once: MiniBrowser never came and nothing answered
SESSION_STARTS = 2
REPLY_MARGIN_S = 30  # the driver gives up on a script first and says so
XVFB_START_TIMEOUT_S = 30
SHARED_MEMORY_ENV = {"JSC_useSharedArrayBuffer": "1"}  # JavaScriptCore reads its options from JSC_* variables
# The function's result (or its error) through WebDriver's async-script callback.
ASYNC_CALL = """const done = arguments[arguments.length - 1];
Promise.resolve().then(() => (%s)(arguments[0])).then(
  (value) => done({ value: value === undefined ? null : value }),
  (e) => done({ error: String(e && e.message || e) }));"""


class Xvfb:
    """A virtual X display on the first free number (Xvfb -displayfd picks it)."""

    def __init__(self):
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise EngineError("Xvfb is missing, so WebKit (MiniBrowser has no headless mode) cannot run: apt-get install -y xvfb")
        read, write = os.pipe()
        self.process = subprocess.Popen([xvfb, "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "1280x1024x24"],
                                        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(write)
        with os.fdopen(read) as numbers:
            number = numbers.readline().strip()  # written once the display is ready; "" if Xvfb died
        if not number:
            self.process.kill()
            raise EngineError(f"Xvfb did not start: {self.process.stderr.read().decode(errors='replace').strip()[-500:]}")
        self.display = f":{number}"

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WebKitPage(Page):
    def __init__(self, env: dict, viewport=None):
        from selenium.common.exceptions import WebDriverException

        self._errors = WebDriverException
        for start in range(1, SESSION_STARTS + 1):
            try:
                self.driver, self.service = _new_session(env)
                break
            except TimeoutError:
                if start == SESSION_STARTS:
                    raise EngineError(f"WebKitWebDriver did not start MiniBrowser within {SESSION_START_TIMEOUT_S} s, "
                                      f"{SESSION_STARTS} times ({MINIBROWSER})") from None
        self.driver.command_executor.client_config.timeout = SCRIPT_TIMEOUT_S + REPLY_MARGIN_S
        self.driver.set_script_timeout(SCRIPT_TIMEOUT_S)
        self.driver.set_page_load_timeout(SCRIPT_TIMEOUT_S)
        if viewport:
            self.driver.set_window_size(viewport["width"], viewport["height"])

    def goto(self, url):
        self.driver.get(url)

    def evaluate(self, source, arg=None):
        try:
            result = self.driver.execute_async_script(ASYNC_CALL % source, arg)
        except self._errors as e:
            raise EngineError(f"WebKit: {e.msg}") from e
        if "error" in result:
            raise EngineError(f"WebKit: {result['error']}")
        return result["value"]

    def screenshot(self, path):
        self.driver.save_screenshot(str(path))

    def close(self):
        try:
            self.driver.quit()
        finally:
            _stop(self.service)


def _new_session(env: dict):
    """A WebDriver session and its own WebKitWebDriver (env: its environment and MiniBrowser's); TimeoutError if no
    session within SESSION_START_TIMEOUT_S."""
    import urllib3
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.remote.client_config import ClientConfig

    options = webdriver.WebKitGTKOptions()
    options.binary_location = MINIBROWSER
    options.add_argument("--automation")
    service = webdriver.WebKitGTKService(executable_path=WEBKIT_DRIVER, env=env,
                                         popen_kw={"start_new_session": True})
    service.start()
    try:
        driver = webdriver.Remote(service.service_url, options=options,
                                  client_config=ClientConfig(service.service_url, timeout=SESSION_START_TIMEOUT_S))
    except urllib3.exceptions.ReadTimeoutError:
        _stop(service)
        raise TimeoutError from None
    except WebDriverException as e:
        _stop(service)
        raise EngineError(f"WebKitWebDriver could not start MiniBrowser: {e.msg}") from e
    except BaseException:
        _stop(service)
        raise
    return driver, service


def _stop(service):
    """The driver and all it started: MiniBrowser and its web processes are in the driver's process group."""
    group = service.process.pid
    service.stop()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


class WebKitEngine(Engine):
    name = "webkit"

    def __init__(self, shared_memory: bool = False):
        for path, what in ((WEBKIT_DRIVER, "WebKitWebDriver"), (MINIBROWSER, "MiniBrowser")):
            if not os.path.exists(path):
                raise missing(f"{what} ({path})", "webkit")
        try:
            import selenium  # noqa: F401
        except ImportError:
            raise EngineError("selenium is not installed: pip install selenium (the browser itself: apt-get install -y webkit2gtk-driver xvfb)") from None
        self.xvfb = Xvfb()
        self.env = {**os.environ, "DISPLAY": self.xvfb.display, **(SHARED_MEMORY_ENV if shared_memory else {})}
        try:
            with self.new_page() as page:
                capabilities = page.driver.capabilities
        except BaseException:
            self.xvfb.close()
            raise
        self.version = f"{capabilities['browserName']} {capabilities['browserVersion']}"

    def new_page(self, viewport=None) -> WebKitPage:
        return WebKitPage(self.env, viewport)

    def close(self):
        self.xvfb.close()


def launch(shared_memory: bool = False) -> WebKitEngine:
    return WebKitEngine(shared_memory)
