"""Baseline 1: the smallest functions-framework function (what a bare Cloud Run function costs)."""

from flask import Request


def hello(request: Request) -> str:
    return "hello"
