"""graphs/livekit_agent.yaml as a LiveKit Agents job: the job's room is the graph's ``room`` resource.

Needs ``pip install 'mediagraph[livekit-agents]'`` and a LiveKit server for a real job::

    export LIVEKIT_URL=ws://localhost:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
    python examples/livekit_agent_job.py dev      # livekit-agents' own command line (start, dev, ...)

Each job the server dispatches runs the graph on its room (the first remote participant's microphone,
denoised, published back as the track ``agent``) until the room disconnects; a node that fails fails the job
with its name. tests/nodes/test_livekit_job.py runs ``entrypoint`` under livekit-agents' fake job context.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodes.livekit_job import run_graph_job
else:
    from mediagraph.nodes.livekit_job import run_graph_job

GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "livekit_agent.yaml"


async def entrypoint(ctx: Any) -> None:
    """The job: the graph runs on ``ctx.room`` and the job ends with it."""
    await run_graph_job(ctx, GRAPH, room="room")


def main() -> None:
    from livekit.agents import AgentServer, cli

    server = AgentServer()
    server.rtc_session(entrypoint)
    cli.run_app(server)


if __name__ == "__main__":
    main()
