"""placeholder"""
from delos_ref.tracecheck.base import Checker
class NativeLogletChecker(Checker):
    SPEC = "NativeLoglet"
