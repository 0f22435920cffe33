"""`GET /v1/responses/{id}/input_items?before=<id>` answers the page right before the cursor, as OpenAI's list
cursors do ("before=obj_foo ... to fetch the previous page of the list"), not the first page of the list."""

from __future__ import annotations

import pytest

from tests.dialects.conftest import CFG


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_before_cursor_gives_the_page_just_before_it(fakes, router, order):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    last = None
    for i in range(6):  # 11 listed items: 6 questions and the 5 answers before the last one
        last = await c.responses.create(model="m", input=f"question {i}",
                                        **({"previous_response_id": last.id} if last else {}))
    assert last is not None
    whole = await c.responses.input_items.list(last.id, order=order, limit=100)
    ids = [i.id for i in whole.data]
    assert len(ids) == 11
    # a client that read the page ids[8:11] goes back one page of 3 from its first id
    page = await c.responses.input_items.list(last.id, order=order, limit=3, extra_query={"before": ids[8]})
    assert [i.id for i in page.data] == ids[5:8]
    assert page.has_more  # ids[0:5] still come before it
    first = await c.responses.input_items.list(last.id, order=order, limit=3, extra_query={"before": ids[2]})
    assert [i.id for i in first.data] == ids[:2] and not first.has_more
    # `after` and `before` together: the items between them, from `after` on
    between = await c.responses.input_items.list(last.id, order=order, limit=3,
                                                 extra_query={"after": ids[1], "before": ids[9]})
    assert [i.id for i in between.data] == ids[2:5] and between.has_more


async def test_listed_input_items_can_be_sent_back_by_reference(fakes, router):
    """The ids `input_items` lists name the stored response's input items, as OpenAI's do: a later request's
    `item_reference` to one stands for it (only output items were kept: every listed id was 404 `Item with id
    ... not found`)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    first = await c.responses.create(model="m", instructions="be brief", input=[
        {"role": "user", "content": "question 0"},
        {"type": "function_call", "call_id": "call_1", "name": "ls", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}])
    second = await c.responses.create(model="m", input="question 1", previous_response_id=first.id)
    listed = await c.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in listed.data] == ["message", "function_call", "function_call_output", "message",
                                             "message"]
    refs = [{"type": "item_reference", "id": i.id} for i in listed.data]
    await c.responses.create(model="m", input=[*refs, {"role": "user", "content": "question 2"}])
    assert up.requests[-1].body["messages"] == [*up.requests[1].body["messages"],
                                                {"role": "user", "content": "question 2"}]


@pytest.mark.parametrize("param", ["after", "before"])
async def test_a_cursor_naming_no_listed_item_is_404_naming_it(fakes, router, param):
    """An `after` or `before` id that is none of the response's input items is a 404 naming the parameter, as
    OpenAI answers a list cursor naming no object (it was an empty page with `has_more: false`: a client paging
    with a stale or mistyped id read it as the end of the list)."""
    import openai

    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    resp = await c.responses.create(model="m", input="hello")
    other = await c.responses.create(model="m", input="other")
    [foreign] = (await c.responses.input_items.list(other.id)).data  # an item of another response
    for cursor in ("msg_nope", foreign.id, "x" * 300):
        with pytest.raises(openai.NotFoundError) as caught:
            await c.responses.input_items.list(resp.id, extra_query={param: cursor})
        err = caught.value.body
        assert isinstance(err, dict) and err["param"] == param and err["type"] == "invalid_request_error"
        assert cursor[:64] in err["message"] and len(err["message"]) < 200
    [own] = (await c.responses.input_items.list(resp.id)).data
    page = await c.responses.input_items.list(resp.id, extra_query={param: own.id})
    assert page.data == [] and not page.has_more
