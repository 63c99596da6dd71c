"""Pages of visits and care actions: the worklist, the visit form and record, care actions."""

from django.urls import path

from tanfang.web.views.care_pages import care_detail, care_list, care_move
from tanfang.web.views.visit_form import visit_edit, visit_new
from tanfang.web.views.visit_page import visit_detail, visit_form_pdf, visit_pdf_view
from tanfang.web.views.worklist import worklist_page

urlpatterns = [
    path("worklist/", worklist_page, name="worklist"),
    path("elders/<int:elder_id>/visits/new/", visit_new, name="visit-new"),
    path("visits/form.pdf", visit_form_pdf, name="visit-form-pdf"),
    path("visits/<int:visit_id>/", visit_detail, name="visit-detail"),
    path("visits/<int:visit_id>/edit/", visit_edit, name="visit-edit"),
    path("visits/<int:visit_id>/pdf/", visit_pdf_view, name="visit-pdf"),
    path("care/", care_list, name="care-list"),
    path("care/<int:action_id>/", care_detail, name="care-detail"),
    path("care/<int:action_id>/move/", care_move, name="care-move"),
]
