class OnnxModule: pass
def load(p): pass
