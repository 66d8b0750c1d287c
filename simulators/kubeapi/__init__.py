"""``setpoint sim serve``: the simulated cluster behind the Kubernetes REST API.

server: the HTTPS server and its clock (SimKubeServer, serve); routes: the resource table and
handlers; store: Kubernetes objects over the simulated engine (resourceVersions, ReplicaSets,
the deployment controller); cluster_events and event_recorder: the Events of the simulated
controllers and kubelets, correlated as client-go's recorder does; hpa_controller: the HPAs run as
kube-controller-manager runs them, hpa_wording its SuccessfulRescale words, hpa_v1 the autoscaling/v1
view; objects: object shapes and API error bodies; patch: the JSON,
merge and strategic-merge patch types; validation: request bodies decoded and checked as the
apiserver does (ObjectMeta, pod templates); field_validation: unknown and duplicate fields under
the ``fieldValidation`` query parameter (Strict, Warn, Ignore); selectors: label and field selectors; watch and
tables: ``?watch=1`` streams and ``kubectl get``'s Table responses; metrics: the scrape endpoint (kube-state-metrics and cAdvisor
style series); http: request parsing and limits; tls: the serving CA and certificate.
"""
