import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

logger = logging.getLogger(__name__)


@shared_task(name="batching.check_threshold")
def check_threshold() -> None:
    """Beat job: start a micro-batch conversion when pending USD passes the threshold."""
    with job_heartbeat("batching.check_threshold"):
        logger.info("conversion threshold check ran: conversion flow not wired yet")
