"""A local WeCom (企业微信) that speaks the server API and sends encrypted callbacks.

`siyu wecom-sim` runs it; the tests and the demo use it over real HTTP on localhost.
"""

from siyu.serverthread import ServerThread, free_port
from siyu.wecom.simulator.app import ApiFaults, FaultInjector, create_app
from siyu.wecom.simulator.callbacks import CallbackFaults, CallbackSender, Event
from siyu.wecom.simulator.state import Simulator

__all__ = [
    "ApiFaults",
    "CallbackFaults",
    "CallbackSender",
    "Event",
    "FaultInjector",
    "ServerThread",
    "Simulator",
    "create_app",
    "free_port",
]
