from services.core.outbox.registry import JobContext, task


@task("test.discovered")
async def discovered(ctx: JobContext) -> None:
    return None
