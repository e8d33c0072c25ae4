"""placeholder"""
from delos_ref.tracecheck.base import Checker
class VirtualLogChecker(Checker):
    SPEC = "VirtualLog"
