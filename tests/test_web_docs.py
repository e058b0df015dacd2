"""The API's own documentation pages in a real browser with every request off the machine refused:
/docs (Swagger UI) and /redoc render from the app's copies (离线接口文档)."""

from __future__ import annotations

from test_web import browser, server  # noqa: F401  (fixtures: the served app and Chromium)


def offline_page(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(server.rstrip("/")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    return context, page, outside


def test_swagger_ui_renders_offline(browser, server):  # noqa: F811
    context, page, outside = offline_page(browser, server)
    page.goto(server + "docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "medpay" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-description:has-text('a JSON Schema of a situation')")
    assert not outside, outside
    context.close()


def test_redoc_renders_offline(browser, server):  # noqa: F811
    context, page, outside = offline_page(browser, server)
    page.goto(server + "redoc")
    page.wait_for_selector("h1:has-text('medpay')")
    page.wait_for_selector("text=evaluate many situations in one call")
    assert not outside, outside
    context.close()
